# Shared helpers for the rig's image recipes (bash; sourced). Part of the cache key of every image.
# Contract with tests/rig/images.py: a recipe is run as `bash RECIPE.sh NAME OUT` with
#   OUT               OCI image layout to create (must not exist), tag "latest"
#   W                 private scratch dir (a tmpfs that disappears with the build)
#   SOURCE_DATE_EPOCH fixed timestamp (every date in the image comes from it)
#   DEP_<NAME>        OCI layout of an image this one is derived from (see images.py)
#   RIG_MIRRORS       newline-separated "deb URI SUITE COMPONENTS" lines (from this machine's apt config)
set -euo pipefail
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:?SOURCE_DATE_EPOCH must be set} LC_ALL=C TZ=UTC
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
BASEPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umask 022

progress() { echo "rig: [$RIG_NAME] $*" >&2; }

# mklayer DIR OUT.tar: deterministic uncompressed layer tar of DIR's contents. Entry names carry no "./" prefix
# (like docker/buildkit layers), real numeric owners (Debian rootfs has redis/postgres-owned files), PAX headers
# only where needed (like Go's archive/tar), hard links preserved.
mklayer() {
  local dir=$1 out=$2
  ( cd "$dir" && tar --format=pax --pax-option=delete=atime,delete=ctime --sort=name --numeric-owner \
      --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime -cf "$out" $(ls -A | LC_ALL=C sort) )
}

# new_image LAYOUT: empty image "latest" in a new OCI layout
new_image() { umoci init --layout "$1" && umoci new --image "$1:latest"; }
# add_layer LAYOUT TAR CREATED_BY: append TAR (uncompressed) as a gzip layer with a history entry.
# NOT `umoci insert`: umoci 0.4.7 writes layer tars without end-of-archive blocks (umoci#436).
add_layer() { umoci raw add-layer --image "$1:latest" --history.created "$CREATED" --history.created_by "$3" "$2"; }
# set_config LAYOUT ARGS...: umoci config with the fixed dates and the common fields
set_config() {
  local l=$1; shift
  umoci config --image "$l:latest" --created "$CREATED" --history.created "$CREATED" --author 'oci2bin test rig' \
    --os linux "$@"
}
finish() { umoci gc --layout "$1"; }

# busybox_rootfs DIR [BUSYBOX]: the rootfs of the official busybox image, from Debian's busybox-static:
# every applet is a HARD link to /bin/busybox; empty /dev /proc /sys mount points; /tmp 1777; /root 0700.
busybox_rootfs() {
  local r=$1 bb=${2:-/bin/busybox} a
  mkdir -p "$r"/{bin,dev,etc,proc,sys,root,tmp,var/www,home}
  chmod 1777 "$r/tmp"; chmod 700 "$r/root"
  cp "$bb" "$r/bin/busybox"; chmod 755 "$r/bin/busybox"
  # applet list from the amd64 binary (same source package for every arch)
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln "$r/bin/busybox" "$r/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$r/etc/group"
  echo '<h1>hello from busybox httpd</h1>' > "$r/var/www/index.html"
}
