#!/bin/bash
# Benchmark 2: first start (empty rootfs cache) of a Debian image, /bin/true.
#   gzip layers:  oci2bin first start vs `tar -xzf` of the same layer blobs into the same filesystem (goal <= 1.0x)
#   zstd layers:  oci2bin first start vs `zstd -dc | tar -x`                                        (goal <= 1.2x)
#   peak extra disk during a first start, on a dedicated loop-mounted ext4 sampled with statvfs, vs the
#   space of the unpacked image (the same layers unpacked by tar on the same fs)                   (goal <= 1.05x)
# The layer blobs are taken out of the built binaries themselves (a docker-archive), so both sides read the
# same bytes. Rows "+sync" add `sync -f` (the loader syncfs()s the entry before publishing it).
# usage: bench/first-start.sh [IMAGE]   (rig image, default apache2; BENCH_RUNS (tmpfs, loop ext4), default 5;
#        BENCH_RUNS_DISK (the work dir's own fs), default 2)
. "$(dirname "$0")/lib.sh"
IMG=${1:-apache2}; N=${BENCH_RUNS:-5}
machine
LAYOUT=$(rig_path "$IMG")
oci2bin assemble -q --loader "$LOADER" --image "oci:$LAYOUT" --output "$W/gz"
oci2bin assemble -q --loader "$LOADER" --image "oci:$LAYOUT" --output "$W/zst" --compress zstd

# layer blobs (in order) out of each binary
layers() {  # BINARY DIR -> prints the extracted layer paths
  mkdir -p "$2"; tar -xf "$1" -C "$2" manifest.json blobs
  "$PY" -c 'import json,sys; [print(sys.argv[2]+"/"+l) for l in json.load(open(sys.argv[1]))[0]["Layers"]]' "$2/manifest.json" "$2"
}
mapfile -t GZL < <(layers "$W/gz" "$W/gzb"); mapfile -t ZSL < <(layers "$W/zst" "$W/zsb")
mk() {  # NAME BODY -> an executable sh script $W/NAME (timeit.py spawns argv directly)
  printf '#!/bin/sh\nset -e\n%s\n' "$2" > "$W/$1"; chmod +x "$W/$1"; echo "$W/$1"
}
TGZ=""; TZS=""
for l in "${GZL[@]}"; do TGZ+="tar -xzf $l -C \"\$1\""$'\n'; done
for l in "${ZSL[@]}"; do TZS+="zstd -dc $l | tar -x -C \"\$1\""$'\n'; done
mk tar-gz.sh "$TGZ" >/dev/null; mk tar-zst.sh "$TZS" >/dev/null
mk tar-gz-sync.sh "$TGZ"'sync -f "$1"' >/dev/null; mk tar-zst-sync.sh "$TZS"'sync -f "$1"' >/dev/null

mkdir -p "$W/x"; "$W/tar-gz.sh" "$W/x"
echo "image: $IMG ($LAYOUT): ${#GZL[@]} layer(s); gzip $(cat "${GZL[@]}" | wc -c) B, zstd (writer default level) $(cat "${ZSL[@]}" | wc -c) B;" \
     "unpacked $(du -s --apparent-size -B1 "$W/x" | cut -f1) B apparent, $(du -s -B1 "$W/x" | cut -f1) B on disk, $(find "$W/x" | wc -l) entries"
rm -rf "$W/x"
timing() {  # LABEL DIR RUNS [gz]: interleaved first starts, the loader's cache and tar's target both on DIR
  local L=$1 D=$2 R=$3 PREP="rm -rf $2/c $2/x; mkdir -p $2/x; sync"
  echo
  echo "### first start on $L ($(df -T "$D" | awk 'NR==2{print $2" "$1}') at $D): /bin/true in $IMG, $R interleaved rounds (bench/timeit.py, 1 warmup)"
  echo "prepare before each run (untimed): $PREP; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  local cmds=(--prepare "$PREP" -n tar-xzf "$W/tar-gz.sh $D/x"
              --prepare "$PREP" -n oci2bin-gzip "$W/gz --cache-dir $D/c /bin/true")
  [ "${4:-}" = gz ] || cmds+=(
              --prepare "$PREP" -n zstd-dc-tar-x "$W/tar-zst.sh $D/x"
              --prepare "$PREP" -n oci2bin-zstd "$W/zst --cache-dir $D/c /bin/true"
              --prepare "$PREP" -n tar-xzf+sync "$W/tar-gz-sync.sh $D/x"
              --prepare "$PREP" -n zstd-tar+sync "$W/tar-zst-sync.sh $D/x")
  "$PY" "$REPO/bench/timeit.py" --runs "$R" --warmup 1 --out "$OUT/first-$L.json" "${cmds[@]}"
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  summarize "$OUT/first-$L.json" 0
  "$PY" - "$OUT/first-$L.json" <<'PY'
import json, statistics, sys
res = json.load(open(sys.argv[1]))["results"]
r = {x["command"]: statistics.median(x["times"]) for x in res}
# CPU (user+sys of the command and its children, wait4 rusage): the part of the cost that does not depend on
# how busy the machine is
cpu = {x["command"]: statistics.median(u + s for u, s in zip(x["user"], x["system"])) for x in res if x.get("user")}
print()
if cpu:
    for a, b in (("oci2bin-gzip", "tar-xzf"), ("oci2bin-zstd", "zstd-dc-tar-x")):
        if a in cpu and b in cpu:
            print(f"CPU user+sys (median): {a} {cpu[a]:.3f} s / {b} {cpu[b]:.3f} s = {cpu[a]/cpu[b]:.2f}x")
print(f"gzip: oci2bin / tar -xzf = {r['oci2bin-gzip']/r['tar-xzf']:.2f}x (goal <= 1.0x)" +
      (f"; vs tar+sync {r['oci2bin-gzip']/r['tar-xzf+sync']:.2f}x" if 'tar-xzf+sync' in r else ""))
if 'oci2bin-zstd' in r:
    print(f"zstd: oci2bin / zstd -dc | tar -x = {r['oci2bin-zstd']/r['zstd-dc-tar-x']:.2f}x (goal <= 1.2x); vs +sync {r['oci2bin-zstd']/r['zstd-tar+sync']:.2f}x")
PY
  rm -rf "$D/c" "$D/x"
}
# Three filesystems, each both sides on the same one:
#  tmpfs      the CPU side (decompress, sha256, tar, file creation) without a disk
#  loop-ext4  a fresh, default (journaled) ext4 on a loop device backed by the work dir's disk; also used
#             for the peak-disk sampling (only our writes count)
#  workdir    the work dir's own filesystem (here: the VM's root ext4, which has no journal); gzip only
mkdir -p "$W/t"; mount -t tmpfs -o size=2g bench-tmpfs "$W/t"; on_exit "umount $W/t"
timing tmpfs "$W/t" "$N"
umount "$W/t"
DISK_MB=${BENCH_DISK_MB:-2048}
truncate -s "${DISK_MB}M" "$W/disk.img"; mkfs.ext4 -q -F "$W/disk.img"; mkdir "$W/fs"
mount -o loop "$W/disk.img" "$W/fs"; on_exit "umount $W/fs"
timing loop-ext4 "$W/fs" "$N"
mkdir -p "$W/d"
timing workdir "$W/d" "${BENCH_RUNS_DISK:-2}" gz
echo
echo "--no-cache first start (private extraction into the loader's tmpfs), $N rounds:"
"$PY" "$REPO/bench/timeit.py" --runs "$N" --warmup 1 --out "$OUT/first-nocache.json" \
  -n oci2bin-gzip-no-cache "$W/gz --no-cache /bin/true" -n oci2bin-zstd-no-cache "$W/zst --no-cache /bin/true"
summarize "$OUT/first-nocache.json"
echo "scripts:"; for s in tar-gz.sh tar-zst.sh; do sed -n '3p' "$W/$s" | sed "s/^/  $s: /"; done

# one --debug first start each, for where the time goes
for b in gz zst; do
  rm -rf "$W/fs/c"; sync
  echo "--debug first start ($b, cache on the loop ext4):"; "$W/$b" --debug --cache-dir "$W/fs/c" /bin/true 2>&1 | grep -E 'layer|rootfs:|cached rootfs|exec|exited' | sed 's/^/  /'
done
rm -rf "$W/fs/c"

# peak extra disk: the dedicated loop ext4, so only our writes count
echo
echo "## peak extra disk during a first start (loop ext4 ${DISK_MB} MiB, statvfs sampled every ~1 ms)"
echo "| run | peak extra MiB | final extra MiB | peak / unpacked (tar) | samples |"
echo "|---|---|---|---|---|"
disk() {  # NAME CMD...
  rm -rf "$W/fs/c" "$W/fs/x"; mkdir -p "$W/fs/x"; sync
  "$PY" "$REPO/bench/diskpeak.py" "$W/fs" "${@:2}" > "$OUT/disk-$1.json"
}
disk tar-gz "$W/tar-gz.sh" "$W/fs/x"
disk oci2bin-gz "$W/gz" --cache-dir "$W/fs/c" /bin/true
disk tar-zst "$W/tar-zst.sh" "$W/fs/x"
disk oci2bin-zst "$W/zst" --cache-dir "$W/fs/c" /bin/true
"$PY" - "$OUT" <<'PY'
import json, sys
o = sys.argv[1]; d = {n: json.load(open(f"{o}/disk-{n}.json")) for n in ("tar-gz", "oci2bin-gz", "tar-zst", "oci2bin-zst")}
ref = d["tar-gz"]["final"] - d["tar-gz"]["baseline"]
for n, v in d.items():
    pk, fi = v["peak"] - v["baseline"], v["final"] - v["baseline"]
    print(f"| {n} | {pk/2**20:.1f} | {fi/2**20:.1f} | {pk/ref:.3f}x | {v['samples']} |")
PY
rm -rf "$W/fs/c" "$W/fs/x"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
