#!/bin/bash
# Install everything the test rig and the test suite need on a Debian 12 machine (root), create the unprivileged
# users `tester` and `tester-nosubid` (no subuid range), and write podman configs that work on these VMs. Idempotent; CI calls it.
#   usage: tests/rig/install-deps.sh [--no-apt] [--list]
#     --list    print the Debian packages and exit
#     --no-apt  only (re)create the user and the podman configs
# Podman config (why): root lacks CAP_SYS_RESOURCE and the hard RLIMIT_NOFILE is 20000, so podman's default
# ulimits make the runtime fail ("setrlimit ... Operation not permitted"); crun refuses the hybrid cgroup v1+v2
# layout -> runc; netns none keeps runs hermetic; storage under $OCI2BIN_TEST_DIR, not /var/lib/containers.
# Use them with:  . $OCI2BIN_TEST_DIR/root-env.sh   or, as tester,  . $OCI2BIN_TEST_DIR/tester-env.sh
set -euo pipefail
D=${OCI2BIN_TEST_DIR:-/var/lib/oci2bin-test}
TESTER=${OCI2BIN_TEST_USER:-tester}

PACKAGES=(
  # image rig: build, convert, inspect images (tests/rig/images*)
  skopeo umoci mmdebstrap busybox-static zstd ca-certificates util-linux tar gzip python3 debian-archive-keyring
  # consumers the tests compare against
  podman runc uidmap slirp4netns
  # registry fixture (tests/rig/registry.py): distribution's registry, htpasswd
  docker-registry apache2-utils
  # runtimes, user namespaces, foreign arch, VM mode
  bubblewrap qemu-user-static qemu-system-x86 squashfs-tools erofs-utils passt
  # service smoke tests: real clients
  redis-tools postgresql-client libmemcached-tools curl procps psmisc iproute2
)
if [ "${1:-}" = --list ]; then printf '%s\n' "${PACKAGES[@]}"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "install-deps.sh: run as root" >&2; exit 1; }

if [ "${1:-}" != --no-apt ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi

if ! id "$TESTER" >/dev/null 2>&1; then
  useradd -m -s /bin/bash "$TESTER"
fi
# subordinate ids for rootless podman / newuidmap (useradd adds them on Debian 12; make sure)
grep -q "^$TESTER:" /etc/subuid || usermod --add-subuids 100000-165535 "$TESTER"
grep -q "^$TESTER:" /etc/subgid || usermod --add-subgids 100000-165535 "$TESTER"
# --vm tests as tester: KVM where /dev/kvm belongs to group kvm (udev's default). Here /dev/kvm is root-only PVM,
# which cannot boot a stock kernel anyway: the VM tests then use TCG (`--vm-accel auto`). The guest kernel is fetched
# by the tests (tests/rig/vm_kernel.py: `apt-get download` of Debian's cloud kernel into the rig cache).
if getent group kvm >/dev/null; then usermod -aG kvm "$TESTER"; fi
# a second unprivileged user WITHOUT subordinate ids: the loader's single-id map and rootfs patching
# (tests/integration/loader/test_single_id.py); useradd may add ranges, so they are removed
NOSUBID=${OCI2BIN_TEST_NOSUBID_USER:-tester-nosubid}
id "$NOSUBID" >/dev/null 2>&1 || useradd -m -s /bin/bash "$NOSUBID"
sed -i "/^$NOSUBID:/d" /etc/subuid /etc/subgid

install -d -m 755 "$D"
cat > "$D/containers.conf" <<CONF
[containers]
netns = "none"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
cat > "$D/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$D/podman/root"
runroot = "$D/podman/run"
CONF
echo "export CONTAINERS_CONF=$D/containers.conf CONTAINERS_STORAGE_CONF=$D/storage.conf" > "$D/root-env.sh"

# rootless: own HOME/XDG dirs under $D; native overlay works on kernel >= 5.13 (no fuse-overlayfs needed)
install -d -o "$TESTER" -g "$TESTER" -m 700 "$D/$TESTER"
cat > "$D/tester-containers.conf" <<CONF
[containers]
netns = "none"
[engine]
runtime = "runc"
CONF
cat > "$D/tester-storage.conf" <<CONF
[storage]
driver = "overlay"
rootless_storage_path = "$D/$TESTER/storage"
CONF
cat > "$D/tester-env.sh" <<CONF
export HOME=$D/$TESTER/home XDG_RUNTIME_DIR=$D/$TESTER/xdg
mkdir -p -m 700 "\$HOME" "\$XDG_RUNTIME_DIR"
export CONTAINERS_CONF=$D/tester-containers.conf CONTAINERS_STORAGE_CONF=$D/tester-storage.conf
CONF
chmod 644 "$D"/*.conf "$D"/*.sh
# aarch64 programs inside aarch64 images (the example's aarch64 binary test) run through binfmt_misc + qemu
"$(dirname "$0")/binfmt-aarch64.sh"
echo "install-deps.sh: ok (packages: ${#PACKAGES[@]}, user $TESTER, podman configs in $D)"
