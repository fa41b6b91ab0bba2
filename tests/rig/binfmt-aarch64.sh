#!/bin/bash
# Register qemu-aarch64-static with binfmt_misc (flag F: the interpreter is opened now, so it also works inside
# the containers' mount namespaces), so aarch64 programs inside aarch64 images run on an x86_64 host.
# Debian registers it through systemd-binfmt, which fresh CI VMs may not run. Idempotent; root only.
set -euo pipefail
[ "$(uname -m)" = aarch64 ] && exit 0
B=/proc/sys/fs/binfmt_misc
mountpoint -q "$B" || mount -t binfmt_misc binfmt_misc "$B"
[ -e "$B/qemu-aarch64" ] && exit 0
conf=/usr/lib/binfmt.d/qemu-aarch64.conf
[ -f "$conf" ] || { echo "binfmt-aarch64.sh: $conf missing (apt-get install qemu-user-static)" >&2; exit 1; }
# Debian's entry uses a wrapper that needs flag P; register the static emulator itself with flag F instead.
IFS=: read -r _ name type offset magic mask _ _ < "$conf"
printf ':%s:%s:%s:%s:%s:%s:F\n' "$name" "$type" "$offset" "$magic" "$mask" /usr/bin/qemu-aarch64-static > "$B/register"
echo "binfmt_misc: registered $name -> /usr/bin/qemu-aarch64-static"
