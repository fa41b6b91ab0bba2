#!/bin/bash
# Benchmark 3: assembly of a binary from an OCI layout, no recompression.
#   `oci2bin assemble` vs `cp` of the same number of bytes (the assembled binary)   goal <= 2x
#   cached rebuild (`oci2bin IMAGE OUT --cache`, output cache warm)                  goal < 0.3 s
#   peak RSS of each (/usr/bin/time -v)
# Two ways to run oci2bin: from the source tree (src/python; this environment sets PYTHONDONTWRITEBYTECODE=1,
# so every run compiles the modules it imports) and "installed": a copy of the package with its bytecode
# compiled once (`python -m compileall`, what pip install does), as a user runs it.
# Neither oci2bin nor cp fsyncs its output; the "cp+fsync" row (`cp` then `sync FILE`) shows what an fsync
# would cost. "verify-always" hashes every blob (OCI2BIN_VERIFY=always: a first build from a layout).
# "cp-layer-blob" copies the layout's largest blob (the bytes assemble copies, from the same page-cache pages):
# the built binary was just written, and a file's page-cache state changes what copying it costs (~1.3x here).
# usage: bench/assembly.sh [IMAGE]   (rig image, default postgres: one 139 MB gzip layer; BENCH_RUNS, default 15)
. "$(dirname "$0")/lib.sh"
IMG=${1:-postgres}; N=${BENCH_RUNS:-15}
machine
LAYOUT=$(rig_path "$IMG")
export XDG_CACHE_HOME=$W/xdg
SRC=$REPO/src/python
SITE=$W/site; mkdir -p "$SITE"; cp -r "$SRC/oci2bin" "$SITE/"; "$PY" -m compileall -q "$SITE" >/dev/null
A=$W/a; mkdir -p "$A"
# run oci2bin from PYTHONPATH=$1 (timeit.py spawns commands without a shell)
printf '#!/bin/sh\np=$1; shift; PYTHONPATH=$p exec %s -m oci2bin "$@"\n' "$PY" > "$W/oci2bin-from"; chmod +x "$W/oci2bin-from"
printf '#!/bin/sh\nOCI2BIN_VERIFY=always exec "$@"\n' > "$W/verify-always"; chmod +x "$W/verify-always"
printf '#!/bin/sh\ncp "$1" "$2" && sync "$2"\n' > "$W/cp-fsync.sh"; chmod +x "$W/cp-fsync.sh"
ASM="assemble -q --loader $LOADER --image oci:$LAYOUT --output $A/asm.bin"
"$W/oci2bin-from" "$SRC" assemble -q --loader "$LOADER" --image "oci:$LAYOUT" --output "$W/ref.bin"
sleep 2  # the verified-blob memo records only files whose timestamps are older than 2 s (racy-change rule)
"$W/oci2bin-from" "$SRC" assemble -q --loader "$LOADER" --image "oci:$LAYOUT" --output "$W/ref2.bin"
cmp "$W/ref.bin" "$W/ref2.bin"
echo "image: $IMG ($LAYOUT): layout blobs $(du -sb "$LAYOUT/blobs" | cut -f1) B; binary $(stat -c %s "$W/ref.bin") B"
# output cache: the first --cache run stores the entry, later runs are cached rebuilds
CACHED="oci:$LAYOUT $A/cached.bin --loader $LOADER --cache -q"
"$W/oci2bin-from" "$SRC" $CACHED
cmp "$A/cached.bin" "$W/ref.bin"
BLOB=$(ls -S "$LAYOUT"/blobs/sha256/* | head -1)
PREP="rm -f $A/*.bin $A/.oci2bin-*"
echo
echo "## assembly: $IMG, $N interleaved rounds (bench/timeit.py, 1 warmup), output and source on $(df -T "$W" | awk 'NR==2{print $2}')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" "$REPO/bench/timeit.py" --runs "$N" --warmup 1 --out "$OUT/assembly.json" \
  --prepare "$PREP" -n cp "cp $W/ref.bin $A/cp.bin" \
  --prepare "$PREP" -n cp+fsync "$W/cp-fsync.sh $W/ref.bin $A/cp.bin" \
  --prepare "$PREP" -n cp-layer-blob "cp $BLOB $A/blob.bin" \
  --prepare "$PREP" -n assemble-installed "$W/oci2bin-from $SITE $ASM" \
  --prepare "$PREP" -n assemble-source-tree "$W/oci2bin-from $SRC $ASM" \
  --prepare "$PREP" -n assemble-verify-always "$W/verify-always $W/oci2bin-from $SITE $ASM" \
  --prepare "$PREP" -n cached-rebuild-installed "$W/oci2bin-from $SITE $CACHED" \
  --prepare "$PREP" -n cached-rebuild-source-tree "$W/oci2bin-from $SRC $CACHED" \
  --prepare "$PREP" -n python-startup "$PY -c pass" \
  --prepare "$PREP" -n oci2bin-version-installed "$W/oci2bin-from $SITE --version"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
summarize "$OUT/assembly.json" 0
"$PY" - "$OUT/assembly.json" <<'PY'
import json, statistics, sys
res = json.load(open(sys.argv[1]))["results"]
r = {x["command"]: statistics.median(x["times"]) for x in res}
cpu = {x["command"]: statistics.median(u + s for u, s in zip(x["user"], x["system"])) for x in res}
print()
for how in ("installed", "source-tree"):
    a = f"assemble-{how}"
    print(f"{a} / cp = {r[a]/r['cp']:.2f}x wall, {cpu[a]/cpu['cp']:.2f}x CPU (goal <= 2x);"
          f" / cp-layer-blob = {r[a]/r['cp-layer-blob']:.2f}x wall, {cpu[a]/cpu['cp-layer-blob']:.2f}x CPU;"
          f" / (cp+fsync) = {r[a]/r['cp+fsync']:.2f}x wall")
for how in ("installed", "source-tree"):
    c = f"cached-rebuild-{how}"
    print(f"{c} = {r[c]:.3f} s wall, {cpu[c]:.3f} s CPU (goal < 0.3 s)")
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
rss assemble-installed "$W/oci2bin-from" "$SITE" $ASM
rss assemble-verify-always "$W/verify-always" "$W/oci2bin-from" "$SITE" $ASM
rss cached-rebuild-installed "$W/oci2bin-from" "$SITE" $CACHED
rss cp cp "$W/ref.bin" "$A/cp.bin"
eval "$PREP"
echo
echo "commands (oci2bin-from P = PYTHONPATH=P $PY -m oci2bin; installed: $SITE, bytecode compiled):"
echo "  assemble: oci2bin-from P $ASM"
echo "  cached rebuild: XDG_CACHE_HOME=$XDG_CACHE_HOME oci2bin-from P $CACHED"
