# Shared helpers of the benchmarks (sourced). Not a test: nothing here asserts; scripts print numbers.
#   BENCH_LOADER   loader ELF (default dist/loader/loader-x86_64; run-all.sh builds it with Pants)
#   BENCH_RUNS     repetitions per measured command (default per script)
#   BENCH_WORK     parent of the work dir (default /var/tmp); the work dir bench-XXXXXX is removed at exit
#   BENCH_OUT      directory for hyperfine JSON + summaries (default: inside the work dir, i.e. discarded)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${BENCH_PYTHON:-/opt/devenv/bin/python}
LOADER=${BENCH_LOADER:-$REPO/dist/loader/loader-x86_64}
[ "$(id -u)" = 0 ] || { echo "bench: run as root (rig images, runc, loop mounts)" >&2; exit 1; }
for t in hyperfine bwrap runc podman zstd tar gzip /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench: missing $t: apt-get install hyperfine bubblewrap runc podman zstd time (podman config: tests/rig/install-deps.sh)" >&2; exit 1; }
done
[ -x "$LOADER" ] || { echo "bench: no loader at $LOADER: ./pants --no-pantsd package //src/c/loader:loader-x86_64" >&2; exit 1; }

W=$(mktemp -d "${BENCH_WORK:-/var/tmp}/bench-XXXXXX")
OUT=${BENCH_OUT:-$W/out}; mkdir -p "$OUT"
_cleanup_hooks=()
on_exit() { _cleanup_hooks+=("$1"); }
_cleanup() {
  local i
  for ((i=${#_cleanup_hooks[@]}-1; i>=0; i--)); do eval "${_cleanup_hooks[i]}" >/dev/null 2>&1 || true; done
  # cache entries of loader runs may hold files owned by other ids: we are root, rm works
  rm -rf "$W"
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

log() { printf 'bench: %s\n' "$*" >&2; }

# rig image -> OCI layout path (builds it on first use; cached in ~/.cache/oci2bin-rig)
rig_path() { (cd "$REPO" && PYTHONPATH=$REPO "$PY" -m tests.rig.images path "$1"); }
rig_build() { (cd "$REPO" && PYTHONPATH=$REPO "$PY" -m tests.rig.images build "$@" >&2); }

oci2bin() { PYTHONPATH=$REPO/src/python "$PY" -m oci2bin "$@"; }

# The machine and the versions, once per script
machine() {
  echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
  echo "work fs: $(df -T "$W" | awk 'NR==2{print $2" on "$1" ("$7")"}'), $(findmnt -no OPTIONS -T "$W")"
  echo "oci2bin: $(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD -- src || echo '+dirty-src'), loader $(sha256sum "$LOADER" | cut -c1-12) ($(stat -c %s "$LOADER") B)"
  echo "tools: $(hyperfine --version), bwrap $(bwrap --version | cut -d' ' -f2), runc $(runc --version | awk 'NR==1{print $3}'), podman $(podman --version | cut -d' ' -f3), $(tar --version | head -1), gzip $(gzip --version | awk 'NR==1{print $2}'), zstd $(zstd --version | grep -o 'v[0-9.]*'), python $("$PY" -c 'import platform;print(platform.python_version())')"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# hyperfine wrapper: hf NAME [hyperfine args...]; writes $OUT/NAME.json, prints a table (median, IQR, min, max)
hf() {
  local name=$1; shift
  hyperfine --style basic --export-json "$OUT/$name.json" "$@" >"$OUT/$name.hyperfine.txt" 2>&1 || {
    cat "$OUT/$name.hyperfine.txt" >&2; return 1; }
  summarize "$OUT/$name.json"
}

# summarize JSON [BASE_INDEX]: median / IQR / min / max per command, ratio of medians to command BASE_INDEX,
# and (timeit.py JSON) the median user / sys CPU time of the command and its children (wait4 rusage)
summarize() {
  "$PY" - "$@" <<'PY'
import json, statistics, sys
d = json.load(open(sys.argv[1]))["results"]
base = int(sys.argv[2]) if len(sys.argv) > 2 else None
def q(xs, p):
    xs = sorted(xs); k = (len(xs) - 1) * p; f = int(k); c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)
unit = 1000.0
cpu = all("user" in r for r in d)
print(f"| command | n | median ms | IQR ms | min ms | max ms |" + (" ratio |" if base is not None else "")
      + (" user ms | sys ms |" if cpu else ""))
print("|---|---|---|---|---|---|" + ("---|" if base is not None else "") + ("---|---|" if cpu else ""))
bm = statistics.median(d[base]["times"]) if base is not None else None
for r in d:
    t = r["times"]; m = statistics.median(t)
    row = f"| `{r['command']}` | {len(t)} | {m*unit:.1f} | {(q(t,.75)-q(t,.25))*unit:.1f} | {min(t)*unit:.1f} | {max(t)*unit:.1f} |"
    if bm is not None:
        row += f" {m/bm:.2f}x |"
    if cpu:
        row += f" {statistics.median(r['user'])*unit:.1f} | {statistics.median(r['system'])*unit:.1f} |"
    print(row)
PY
}
