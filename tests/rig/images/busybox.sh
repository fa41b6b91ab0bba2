#!/bin/bash
# busybox | busybox-httpd | scratch: images made from Debian's busybox-static (host /bin/busybox).
#   busybox        one layer, like the official image (applets as hard links), CMD sh
#   busybox-httpd  same layer; ENTRYPOINT httpd -f -v, CMD -p 8080, EXPOSE 8080, USER 65534:65534, WORKDIR /var/www,
#                  labels, StopSignal (every config field a loader maps)
#   scratch        "FROM scratch": one static binary at /busybox, no /etc /dev /proc /tmp; USER 1000:1000
RIG_NAME=$1 OUT=$2
. "$(dirname "$0")/lib.sh"
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null || { echo "rig: /bin/busybox missing: apt-get install busybox-static" >&2; exit 3; }
BBVER=$(dpkg-query -W -f='${Version}' busybox-static)

case $RIG_NAME in
busybox|busybox-httpd)
  busybox_rootfs "$W/root"
  mklayer "$W/root" "$W/layer.tar"
  new_image "$OUT"
  add_layer "$OUT" "$W/layer.tar" "ADD busybox-rootfs / # busybox-static $BBVER"
  if [ "$RIG_NAME" = busybox ]; then
    set_config "$OUT" --architecture amd64 --history.created_by 'CMD ["sh"]' \
      --config.cmd sh --config.env PATH=$BASEPATH --config.workingdir / \
      --config.label org.opencontainers.image.title=busybox
  else
    set_config "$OUT" --architecture amd64 --history.created_by 'ENTRYPOINT/CMD/EXPOSE/USER/WORKDIR httpd' \
      --config.entrypoint httpd --config.entrypoint -f --config.entrypoint -v \
      --config.cmd -p --config.cmd 8080 \
      --config.exposedports 8080/tcp --config.workingdir /var/www --config.user 65534:65534 \
      --config.env PATH=$BASEPATH --config.env HTTPD_ROOT=/var/www \
      --config.label org.opencontainers.image.title=busybox-httpd --config.stopsignal SIGTERM
  fi ;;
scratch)
  mkdir -p "$W/root"; cp /bin/busybox "$W/root/busybox"
  mklayer "$W/root" "$W/layer.tar"
  new_image "$OUT"
  add_layer "$OUT" "$W/layer.tar" 'COPY busybox /busybox'
  set_config "$OUT" --architecture amd64 --history.created_by 'ENTRYPOINT ["/busybox"] CMD ["echo","hello from scratch"]' \
    --config.entrypoint /busybox --config.cmd echo --config.cmd 'hello from scratch' --config.user 1000:1000 ;;
*) echo "busybox.sh: unknown image $RIG_NAME" >&2; exit 2 ;;
esac
finish "$OUT"
