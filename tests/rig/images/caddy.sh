#!/bin/bash
# caddy: Debian bookworm (minbase, slimmed) caddy 2.6, built like the official caddy image:
#   CMD caddy run --config /etc/caddy/Caddyfile --adapter caddyfile (runs as root, no entrypoint script),
#   XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data (volumes), file_server from /usr/share/caddy,
#   listens on :${CADDY_PORT} (default 80). Unlike the official image the admin API is off: a fixed admin port
#   (localhost:2019) would collide between runs sharing the host network. (caddy 2.6 has no persist_config:
#   it autosaves the adapted config to /config/caddy/autosave.json.)
# Same steps as debian.sh (kept separate so adding caddy does not change the cache key of the other images):
# mmdebstrap (root mode) -> rootfs in $W (tmpfs) -> drop /dev nodes and logs -> one layer, real numeric owners.
# Packages come from the mirrors of this machine's apt configuration ($RIG_MIRRORS, parsed by images.py).
RIG_NAME=$1 OUT=$2
. "$(dirname "$0")/lib.sh"
[ "$RIG_NAME" = caddy ] || { echo "caddy.sh: unknown image $RIG_NAME" >&2; exit 2; }
mapfile -t MIRRORS <<<"${RIG_MIRRORS:?RIG_MIRRORS is empty: no bookworm deb source found in the apt configuration}"
export TMPDIR=$W
SLIM=(--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
      --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
      --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt=force-unsafe-io)
R=$W/root
PKGS=caddy

progress "mmdebstrap --include=$PKGS (downloads from the configured Debian mirror)"
t0=$SECONDS
mmdebstrap ${RIG_MMDEBSTRAP_OPTS:---quiet} --variant=minbase --include="$PKGS" "${SLIM[@]}" \
  --customize-hook='mkdir -p "$1/config/caddy" "$1/data/caddy" "$1/srv"' bookworm "$R" "${MIRRORS[@]}"
progress "mmdebstrap done in $((SECONDS-t0)) s"
find "$R/dev" -mindepth 1 -delete          # images carry no device nodes
rm -f "$R/etc/hostname" "$R/etc/resolv.conf"
rm -rf "$R"/var/cache/ldconfig/aux-cache "$R"/var/log/*.log "$R"/var/log/apt/* "$R"/var/cache/debconf/*-old \
       "$R"/var/lib/dpkg/*-old

# Caddyfile syntax: tabs (caddy warns about an unformatted Caddyfile otherwise); {$VAR:default} is an env placeholder
printf '%s\n' '{' '	admin off' '}' '' \
  ':{$CADDY_PORT:80} {' '	root * /usr/share/caddy' '	file_server' '}' > "$R/etc/caddy/Caddyfile"
echo '<h1>hello from rig caddy</h1>' > "$R/usr/share/caddy/index.html"

VER=$(chroot "$R" dpkg-query -W -f='${Version}' caddy); VER=${VER%%-*}
mklayer "$R" "$W/layer.tar"
new_image "$OUT"
add_layer "$OUT" "$W/layer.tar" "mmdebstrap --variant=minbase --include=$PKGS bookworm # $(
  chroot "$R" dpkg-query -W -f='${Package}=${Version} ' $PKGS)"
set_config "$OUT" --architecture amd64 --history.created_by 'CMD/ENV/EXPOSE/VOLUME/WORKDIR caddy' \
  --config.cmd caddy --config.cmd run --config.cmd --config --config.cmd /etc/caddy/Caddyfile \
  --config.cmd --adapter --config.cmd caddyfile \
  --config.env PATH=$BASEPATH --config.env CADDY_VERSION=v$VER --config.env CADDY_PORT=80 \
  --config.env XDG_CONFIG_HOME=/config --config.env XDG_DATA_HOME=/data \
  --config.workingdir /srv --config.exposedports 80/tcp --config.exposedports 443/tcp \
  --config.volume /config --config.volume /data \
  --config.label org.opencontainers.image.title=caddy
finish "$OUT"
