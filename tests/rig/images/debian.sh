#!/bin/bash
# Debian bookworm (minbase, slimmed) service images, built like their Docker Hub namesakes:
#   redis     redis-server; USER redis, /data volume, docker-entrypoint.sh, CMD redis-server /etc/redis/redis.conf
#   nginx     nginx-light; master as root + www-data workers, logs to stdout/stderr, entrypoint renders
#             /etc/nginx/templates/*.template with $NGINX_PORT (default 80) into /etc/nginx/conf.d/
#   postgres  postgresql-15; USER postgres, no cluster: the entrypoint runs initdb on first start (PGDATA volume)
#   memcached memcached; USER memcache, entrypoint prepends "memcached" to -flag arguments
#   apache2   apache2; apache2-foreground (sources envvars), Listen ${APACHE_PORT} (default 80), www-data children
#   caddy     caddy 2.6; CMD caddy run --config /etc/caddy/Caddyfile --adapter caddyfile as root, XDG dirs /config
#             and /data (volumes), file_server from /usr/share/caddy on :${CADDY_PORT} (default 80). Unlike the
#             official image the admin API is off: its fixed port (localhost:2019) would collide between runs
#             sharing the host network (caddy 2.6 has no persist_config: it autosaves to /config/caddy/).
# mmdebstrap (root mode) -> rootfs in $W (tmpfs) -> drop /dev nodes and logs -> one layer, real numeric owners.
# Packages come from the mirrors of this machine's apt configuration ($RIG_MIRRORS, parsed by images.py).
RIG_NAME=$1 OUT=$2
. "$(dirname "$0")/lib.sh"
mapfile -t MIRRORS <<<"${RIG_MIRRORS:?RIG_MIRRORS is empty: no bookworm deb source found in the apt configuration}"
export TMPDIR=$W
SLIM=(--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
      --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
      --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt=force-unsafe-io)
R=$W/root

debootstrap() {  # PKGS CUSTOMIZE-HOOK
  progress "mmdebstrap --include=$1 (downloads from the configured Debian mirror)"
  local t0=$SECONDS
  mmdebstrap ${RIG_MMDEBSTRAP_OPTS:---quiet} --variant=minbase --include="$1" "${SLIM[@]}" \
    --customize-hook="$2" bookworm "$R" "${MIRRORS[@]}"
  progress "mmdebstrap done in $((SECONDS-t0)) s"
  find "$R/dev" -mindepth 1 -delete          # images carry no device nodes
  # host facts mmdebstrap copied in (not reproducible across machines; runtimes provide them)
  rm -f "$R/etc/hostname" "$R/etc/resolv.conf"
  rm -rf "$R"/var/cache/ldconfig/aux-cache "$R"/var/log/*.log "$R"/var/log/apt/* "$R"/var/cache/debconf/*-old \
         "$R"/var/lib/dpkg/*-old
  PKGS=$1
}
layer() {  # after debootstrap: the single layer, with the package versions in the history entry
  mklayer "$R" "$W/layer.tar"
  new_image "$OUT"
  add_layer "$OUT" "$W/layer.tar" "mmdebstrap --variant=minbase --include=$PKGS bookworm # $(
    chroot "$R" dpkg-query -W -f='${Package}=${Version} ' ${PKGS//,/ })"
}
entrypoint() {  # PATH: write stdin as an executable script
  cat > "$R$1"; chmod 755 "$R$1"
}

case $RIG_NAME in
redis)
  debootstrap redis-server 'set -e
    sed -i -e "s/^bind .*/bind 0.0.0.0 ::/" -e "s/^protected-mode yes/protected-mode no/" -e "s/^daemonize yes/daemonize no/" \
           -e "s|^logfile .*|logfile \"\"|" -e "s|^dir .*|dir /data|" "$1/etc/redis/redis.conf"
    mkdir -p "$1/data"; chroot "$1" chown redis:redis /data'
  entrypoint /usr/local/bin/docker-entrypoint.sh <<'SH'
#!/bin/sh
set -e
# first arg is `-f` or `--some-option`, or a .conf file: run redis-server with it
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi
exec "$@"
SH
  VER=$(chroot "$R" dpkg-query -W -f='${Version}' redis-server); VER=${VER#*:}; VER=${VER%%-*}
  layer
  set_config "$OUT" --architecture amd64 --history.created_by 'ENTRYPOINT/CMD/USER/VOLUME redis' \
    --config.entrypoint docker-entrypoint.sh --config.cmd redis-server --config.cmd /etc/redis/redis.conf \
    --config.env PATH=$BASEPATH --config.env REDIS_VERSION=$VER \
    --config.workingdir /data --config.user redis \
    --config.exposedports 6379/tcp --config.volume /data \
    --config.label org.opencontainers.image.title=redis ;;
nginx)
  debootstrap nginx-light 'set -e
    ln -sf /dev/stdout "$1/var/log/nginx/access.log"; ln -sf /dev/stderr "$1/var/log/nginx/error.log"
    rm -f "$1/etc/nginx/sites-enabled/default"
    mkdir -p "$1/etc/nginx/templates" "$1/usr/share/nginx/html" "$1/docker-entrypoint.d"'
  cat > "$R/etc/nginx/templates/default.conf.template" <<'CONF'
server {
    listen       ${NGINX_PORT};
    listen  [::]:${NGINX_PORT};
    server_name  localhost;
    location / {
        root   /usr/share/nginx/html;
        index  index.html;
    }
    location = /healthz {
        default_type text/plain;
        return 200 "ok\n";
    }
}
CONF
  echo '<h1>hello from rig nginx</h1>' > "$R/usr/share/nginx/html/index.html"
  entrypoint /docker-entrypoint.sh <<'SH'
#!/bin/sh
# like the official image: render templates, run /docker-entrypoint.d/*.sh, then exec the command
set -e
if [ "$1" = nginx ]; then
	for t in /etc/nginx/templates/*.template; do
		[ -f "$t" ] || continue
		out=/etc/nginx/conf.d/$(basename "$t" .template)
		sed "s/\${NGINX_PORT}/${NGINX_PORT:-80}/g" "$t" > "$out"
		echo "docker-entrypoint.sh: rendered $out (port ${NGINX_PORT:-80})" >&2
	done
	for f in /docker-entrypoint.d/*.sh; do [ -x "$f" ] && "$f"; done
fi
exec "$@"
SH
  VER=$(chroot "$R" dpkg-query -W -f='${Version}' nginx-light); VER=${VER%%-*}
  layer
  set_config "$OUT" --architecture amd64 --history.created_by 'ENTRYPOINT/CMD/EXPOSE/STOPSIGNAL nginx' \
    --config.entrypoint /docker-entrypoint.sh \
    --config.cmd nginx --config.cmd -g --config.cmd 'daemon off;' \
    --config.env PATH=$BASEPATH --config.env NGINX_VERSION=$VER --config.env NGINX_PORT=80 \
    --config.workingdir / --config.exposedports 80/tcp --config.stopsignal SIGQUIT \
    --config.label org.opencontainers.image.title=nginx ;;
postgres)
  debootstrap postgresql-15 'set -e
    chroot "$1" pg_dropcluster 15 main   # the postinst made a cluster; the official image has none
    mkdir -p "$1/var/lib/postgresql/data" "$1/docker-entrypoint-initdb.d"
    chroot "$1" chown -R postgres:postgres /var/lib/postgresql
    chmod 700 "$1/var/lib/postgresql/data"'
  # mmdebstrap's cleanup empties /run: the socket dir, as the official image has it (3777 postgres:postgres)
  install -d -m 3777 -o "$(stat -c %u "$R/var/lib/postgresql")" -g "$(stat -c %g "$R/var/lib/postgresql")" "$R/run/postgresql"
  entrypoint /usr/local/bin/docker-entrypoint.sh <<'SH'
#!/bin/sh
set -e
# first arg is `-f` or `--some-option`: run postgres with it
if [ "${1#-}" != "$1" ]; then set -- postgres "$@"; fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	initdb --username="${POSTGRES_USER:-postgres}" --auth="${POSTGRES_HOST_AUTH_METHOD:-trust}" -D "$PGDATA" >&2
	echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
	for f in /docker-entrypoint-initdb.d/*.sql; do
		[ -f "$f" ] || continue
		postgres --single -D "$PGDATA" "${POSTGRES_DB:-postgres}" < "$f" >&2
	done
	echo "docker-entrypoint.sh: PostgreSQL init process complete; ready for start up." >&2
fi
exec "$@"
SH
  layer
  set_config "$OUT" --architecture amd64 --history.created_by 'ENTRYPOINT/CMD/USER/VOLUME/STOPSIGNAL postgres' \
    --config.entrypoint docker-entrypoint.sh --config.cmd postgres \
    --config.env PATH=/usr/lib/postgresql/15/bin:$BASEPATH --config.env PG_MAJOR=15 \
    --config.env PGDATA=/var/lib/postgresql/data --config.env LANG=C.UTF-8 \
    --config.workingdir /var/lib/postgresql --config.user postgres \
    --config.exposedports 5432/tcp --config.volume /var/lib/postgresql/data --config.stopsignal SIGINT \
    --config.label org.opencontainers.image.title=postgres ;;
memcached)
  debootstrap memcached 'set -e'
  entrypoint /usr/local/bin/docker-entrypoint.sh <<'SH'
#!/bin/sh
set -e
# first arg is `-f` or `--some-option`: run memcached with it
if [ "${1#-}" != "$1" ]; then set -- memcached "$@"; fi
exec "$@"
SH
  VER=$(chroot "$R" dpkg-query -W -f='${Version}' memcached); VER=${VER%%-*}
  layer
  set_config "$OUT" --architecture amd64 --history.created_by 'ENTRYPOINT/CMD/USER memcached' \
    --config.entrypoint docker-entrypoint.sh --config.cmd memcached \
    --config.env PATH=$BASEPATH --config.env MEMCACHED_VERSION=$VER \
    --config.user memcache --config.exposedports 11211/tcp \
    --config.label org.opencontainers.image.title=memcached ;;
apache2)
  debootstrap apache2 'set -e
    sed -i "s/^Listen 80\$/Listen \${APACHE_PORT}/" "$1/etc/apache2/ports.conf"
    sed -i "s/^<VirtualHost \*:80>/<VirtualHost *:\${APACHE_PORT}>/" "$1/etc/apache2/sites-available/000-default.conf"
    echo "ServerName localhost" > "$1/etc/apache2/conf-available/servername.conf"
    chroot "$1" a2enconf -q servername
    ln -sfT /dev/stderr "$1/var/log/apache2/error.log"
    ln -sfT /dev/stdout "$1/var/log/apache2/access.log"
    ln -sfT /dev/stdout "$1/var/log/apache2/other_vhosts_access.log"'
  echo '<h1>hello from rig apache2</h1>' > "$R/var/www/html/index.html"
  entrypoint /usr/local/bin/apache2-foreground <<'SH'
#!/bin/sh
# like the official httpd image's httpd-foreground, for Debian's apache2 layout
set -e
. /etc/apache2/envvars
export APACHE_PORT="${APACHE_PORT:-80}"
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR"
rm -f "$APACHE_PID_FILE"   # a stale pid file stops apache2 from starting
exec apache2 -DFOREGROUND "$@"
SH
  VER=$(chroot "$R" dpkg-query -W -f='${Version}' apache2); VER=${VER%%-*}
  layer
  set_config "$OUT" --architecture amd64 --history.created_by 'CMD/EXPOSE/STOPSIGNAL apache2' \
    --config.cmd apache2-foreground \
    --config.env PATH=$BASEPATH --config.env HTTPD_VERSION=$VER --config.env APACHE_PORT=80 \
    --config.workingdir /var/www/html --config.exposedports 80/tcp --config.stopsignal SIGWINCH \
    --config.label org.opencontainers.image.title=apache2 ;;
caddy)
  debootstrap caddy 'mkdir -p "$1/config/caddy" "$1/data/caddy" "$1/srv"'
  # Caddyfile syntax: tabs (caddy warns about an unformatted Caddyfile otherwise); {$VAR:default} is an env placeholder
  printf '%s\n' '{' '	admin off' '}' '' \
    ':{$CADDY_PORT:80} {' '	root * /usr/share/caddy' '	file_server' '}' > "$R/etc/caddy/Caddyfile"
  echo '<h1>hello from rig caddy</h1>' > "$R/usr/share/caddy/index.html"
  VER=$(chroot "$R" dpkg-query -W -f='${Version}' caddy); VER=${VER%%-*}
  layer
  set_config "$OUT" --architecture amd64 --history.created_by 'CMD/ENV/EXPOSE/VOLUME/WORKDIR caddy' \
    --config.cmd caddy --config.cmd run --config.cmd --config --config.cmd /etc/caddy/Caddyfile \
    --config.cmd --adapter --config.cmd caddyfile \
    --config.env PATH=$BASEPATH --config.env CADDY_VERSION=v$VER --config.env CADDY_PORT=80 \
    --config.env XDG_CONFIG_HOME=/config --config.env XDG_DATA_HOME=/data \
    --config.workingdir /srv --config.exposedports 80/tcp --config.exposedports 443/tcp \
    --config.volume /config --config.volume /data \
    --config.label org.opencontainers.image.title=caddy ;;
*) echo "debian.sh: unknown image $RIG_NAME" >&2; exit 2 ;;
esac
finish "$OUT"
