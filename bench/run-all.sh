#!/bin/bash
# Run every benchmark once, side by side, and write one report.
# usage: bench/run-all.sh [REPORT]   (default: bench/results/run-<UTC time>.md, ignored by git)
#   BENCH_LOADER=PATH  use this loader instead of building //src/c/loader:loader-x86_64 with Pants
#   BENCH_RUNS / BENCH_RUNS_DISK   repetitions (each script has its own default)
#   BENCH_SKIP="warm first assembly"  skip some
# The loader is copied into the run's work dir first, so a rebuild of dist/ during the run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
REPORT=${1:-bench/results/run-$(date -u +%Y%m%dT%H%M%SZ).md}
mkdir -p "$(dirname "$REPORT")"
R=$(mktemp -d /var/tmp/bench-run-XXXXXX); trap 'rm -rf "$R"' EXIT
if [ -z "${BENCH_LOADER:-}" ]; then
  ./pants --no-pantsd package //src/c/loader:loader-x86_64 >&2 ||
    ./pants --no-pantsd --pants-ignore="+['/examples/monorepo']" package //src/c/loader:loader-x86_64 >&2
  BENCH_LOADER=dist/loader/loader-x86_64
fi
cp "$BENCH_LOADER" "$R/loader-x86_64"; export BENCH_LOADER=$R/loader-x86_64
{
  echo "# oci2bin benchmarks, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  for b in warm-start first-start assembly; do
    case " ${BENCH_SKIP:-} " in *" ${b%%-*} "*) continue;; esac
    echo "## bench/$b.sh"
    bash "bench/$b.sh" 2>&1 | grep --line-buffered -v '^oci2bin: image digest' || echo "bench/$b.sh FAILED"
    echo
  done
} | tee "$REPORT"
echo "report: $REPORT" >&2
