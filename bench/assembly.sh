#!/bin/bash
# Benchmark 3: assembly of a binary from an OCI layout, no recompression.
#   `oci2bin assemble` vs `cp` of the same number of bytes (the assembled binary)   goal <= 2x
#   cached rebuild (`oci2bin IMAGE OUT --cache`, output cache warm)                  goal < 0.3 s
#   peak RSS of each (/usr/bin/time -v)
# The writer fsync()s its output, cp does not: the "cp+fsync" row (`cp` then `sync FILE`, coreutils' fsync of
# that one file) is the like-for-like reference; the goal is judged against plain cp as the issue states.
# usage: bench/assembly.sh [IMAGE]   (rig image, default postgres: one 139 MB gzip layer; BENCH_RUNS, default 10)
. "$(dirname "$0")/lib.sh"
IMG=${1:-postgres}; N=${BENCH_RUNS:-10}
machine
LAYOUT=$(rig_path "$IMG")
export PYTHONPATH=$REPO/src/python XDG_CACHE_HOME=$W/xdg
A=$W/a; mkdir -p "$A"
"$PY" -m oci2bin assemble -q --loader "$LOADER" --image "oci:$LAYOUT" --output "$W/ref.bin"
echo "image: $IMG ($LAYOUT): layout blobs $(du -sb "$LAYOUT/blobs" | cut -f1) B; binary $(stat -c %s "$W/ref.bin") B"
printf '#!/bin/sh\ncp "$1" "$2" && sync "$2"\n' > "$W/cp-fsync.sh"; chmod +x "$W/cp-fsync.sh"
# output cache: first --cache run stores the entry, later runs are cached rebuilds
BUILD="$PY -m oci2bin oci:$LAYOUT $A/cached.bin --loader $LOADER --cache -q"
$BUILD
ls "$XDG_CACHE_HOME/oci2bin/output" >/dev/null
PREP="rm -f $A/*.bin $A/.oci2bin-*"
echo
echo "## assembly: $IMG, $N interleaved rounds (bench/timeit.py, 1 warmup), output and source on $(df -T "$W" | awk 'NR==2{print $2}')"
"$PY" "$REPO/bench/timeit.py" --runs "$N" --warmup 1 --out "$OUT/assembly.json" \
  --prepare "$PREP" -n cp "cp $W/ref.bin $A/cp.bin" \
  --prepare "$PREP" -n cp+fsync "$W/cp-fsync.sh $W/ref.bin $A/cp.bin" \
  --prepare "$PREP" -n oci2bin-assemble "$PY -m oci2bin assemble -q --loader $LOADER --image oci:$LAYOUT --output $A/asm.bin" \
  --prepare "$PREP" -n oci2bin-cached-rebuild "$BUILD" \
  --prepare "$PREP" -n python-startup "$PY -c pass" \
  --prepare "$PREP" -n oci2bin-version "$PY -m oci2bin --version"
summarize "$OUT/assembly.json" 0
"$PY" - "$OUT/assembly.json" <<'PY'
import json, statistics, sys
r = {x["command"]: statistics.median(x["times"]) for x in json.load(open(sys.argv[1]))["results"]}
print()
print(f"assemble / cp = {r['oci2bin-assemble']/r['cp']:.2f}x (goal <= 2x); assemble / (cp+fsync) = {r['oci2bin-assemble']/r['cp+fsync']:.2f}x")
print(f"cached rebuild = {r['oci2bin-cached-rebuild']:.3f} s (goal < 0.3 s)")
PY
echo
echo "## peak RSS (/usr/bin/time -v, one run each)"
echo "| command | max RSS MiB | wall s | user s | sys s |"
echo "|---|---|---|---|---|"
rss() {  # NAME CMD...
  eval "$PREP"
  /usr/bin/time -v -o "$OUT/time-$1.txt" "${@:2}" >/dev/null 2>&1
  awk -v n="$1" -F': ' '/Maximum resident/{r=$2} /Elapsed \(wall/{w=$2} /User time/{u=$2} /System time/{s=$2}
    END{printf "| %s | %.1f | %s | %s | %s |\n", n, r/1024, w, u, s}' "$OUT/time-$1.txt"
}
rss oci2bin-assemble $PY -m oci2bin assemble -q --loader "$LOADER" --image "oci:$LAYOUT" --output "$A/asm.bin"
rss oci2bin-cached-rebuild $BUILD
rss cp cp "$W/ref.bin" "$A/cp.bin"
eval "$PREP"
echo
echo "commands:"; echo "  assemble: $PY -m oci2bin assemble -q --loader $LOADER --image oci:$LAYOUT --output OUT"
echo "  cached rebuild: XDG_CACHE_HOME=$XDG_CACHE_HOME $BUILD"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
