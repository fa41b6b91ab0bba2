#!/bin/bash
# Benchmark 1: warm start of a busybox-class image running /bin/true.
#   oci2bin (rootfs cache warm) vs bwrap / runc / podman on the same extracted rootfs; plus oci2bin --no-cache
#   and oci2bin first start (empty cache each run). Goal: oci2bin warm <= 1.5x bwrap.
# usage: bench/warm-start.sh [IMAGE]   (rig image name, default busybox; BENCH_RUNS, default 50)
. "$(dirname "$0")/lib.sh"
IMG=${1:-busybox}; N=${BENCH_RUNS:-50}
machine
LAYOUT=$(rig_path "$IMG")
oci2bin assemble -q --loader "$LOADER" --image "oci:$LAYOUT" --output "$W/img"
export OCI2BIN_CACHE_DIR=$W/cache
"$W/img" /bin/true                                   # populate the cache
ROOTFS=$(ls -d "$W"/cache/rootfs/*-r0)               # the loader's extracted rootfs (mode r0: root, 1:1 ids)
echo "image: $IMG ($LAYOUT), rootfs $(du -sh --apparent-size "$ROOTFS" | cut -f1), binary $(stat -c %s "$W/img") B"

# bwrap: same namespaces as the loader (user, mount, pid, uts, ipc; the loader keeps the host network)
BWRAP="bwrap --unshare-user --unshare-pid --unshare-ipc --unshare-uts --ro-bind $ROOTFS / --proc /proc --dev /dev --tmpfs /tmp --die-with-parent /bin/true"
# runc (root, no user namespace: runc's default spec) on a bundle whose root.path is the same rootfs, read-only
mkdir -p "$W/bundle"; (cd "$W/bundle" && runc spec)
"$PY" - "$W/bundle/config.json" "$ROOTFS" <<'PY'
import json, sys
p, root = sys.argv[1:]; d = json.load(open(p))
d["root"] = {"path": root, "readonly": True}
d["process"].update(terminal=False, args=["/bin/true"])
json.dump(d, open(p, "w"))
PY
RUNC="runc run --bundle $W/bundle bench-$$"
on_exit "runc delete -f bench-$$"
# podman (root): the same image loaded from its docker-archive into the rig's podman storage
D=${OCI2BIN_TEST_DIR:-/var/lib/oci2bin-test}
[ -f "$D/root-env.sh" ] || { echo "bench: no podman config: run tests/rig/install-deps.sh" >&2; exit 1; }
. "$D/root-env.sh"   # containers.conf: runc, ulimits that work on these VMs, netns none
# a private storage in the work dir: other sessions' tests share (and prune) the rig's podman storage
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$W/podman/root" "$W/podman/run" > "$W/storage.conf"
export CONTAINERS_STORAGE_CONF=$W/storage.conf
on_exit "podman system reset -f"
podman load -q -i "$(dirname "$LAYOUT")/docker-archive.tar" >/dev/null
PODMAN="podman run --rm --network none localhost/$IMG:latest /bin/true"
$PODMAN; $RUNC; $BWRAP
echo
echo "## warm start: /bin/true in $IMG, $N interleaved rounds (bench/timeit.py, 3 warmup), ratio = median / bwrap median"
"$PY" "$REPO/bench/timeit.py" --runs "$N" --warmup 3 --out "$OUT/warm.json" \
  -n bwrap "$BWRAP" \
  -n oci2bin-warm "$W/img /bin/true" \
  -n oci2bin-no-cache "$W/img --no-cache /bin/true" \
  -n runc "$RUNC" \
  -n podman "$PODMAN" \
  --prepare "rm -rf $W/cache" -n oci2bin-first-start "$W/img /bin/true"
summarize "$OUT/warm.json" 0
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commands (OCI2BIN_CACHE_DIR=$W/cache):"
"$PY" -c 'import json,sys; [print("  "+r["command"]+": "+(("prepare: "+r["prepare"]+"; ") if r["prepare"] else "")+" ".join(r["argv"])) for r in json.load(open(sys.argv[1]))["results"]]' "$OUT/warm.json"
