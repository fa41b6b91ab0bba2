#!/bin/bash
# multilayer: 4 layers exercising every whiteout / hard-link / mode / owner case a layer extractor must handle.
#   L1 the busybox rootfs (as busybox.sh); L2..L4 from multilayer_layers.py (see its docstring for the cases
#   and the expected merged tree).
RIG_NAME=$1 OUT=$2
. "$(dirname "$0")/lib.sh"
busybox_rootfs "$W/root"
mklayer "$W/root" "$W/l1.tar"
python3 "$(dirname "$0")/multilayer_layers.py" "$W"
new_image "$OUT"
add_layer "$OUT" "$W/l1.tar" 'ADD busybox-rootfs /'
add_layer "$OUT" "$W/l2.tar" 'COPY app etc home opt shared srv usr var /'
add_layer "$OUT" "$W/l3.tar" 'RUN rm -r /etc/motd /bin/vi /app/data/b.txt /app/dangling /srv/olddir /opt/cfg/* /usr/local/bin/setgid-tool; echo three > /opt/cfg/three.conf'
add_layer "$OUT" "$W/l4.tar" 'COPY motd hello.sh; ln /bin/busybox /app/bb; mkdir /srv/olddir; ...'
set_config "$OUT" --architecture amd64 --history.created_by 'ENTRYPOINT ["/app/bin/hello.sh"] CMD ["world"]' \
  --config.entrypoint /app/bin/hello.sh --config.cmd world \
  --config.env PATH=/app/bin:$BASEPATH --config.env GREETING=hi \
  --config.workingdir /app --config.exposedports 8080/tcp --config.exposedports 8443/tcp \
  --config.label org.opencontainers.image.title=multilayer
finish "$OUT"
