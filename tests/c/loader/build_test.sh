#!/bin/sh
# Builds and runs one loader unit test, exactly as CI does:
#   tests/c/loader/build_test.sh TEST_NAME [ARCH]     (run from the repository root)
# The test program links the loader's sources except main.c, plus the Zig objects.
set -eu
T=$1
ARCH=${2:-x86_64}
if [ -z "${OUT:-}" ]; then
    OUT=$(mktemp -d)
    trap 'rm -rf "$OUT"' EXIT
fi
Z=${Z:-"/opt/devenv/bin/python -m ziglang"}
# every Zig file of the loader is one object (as in the Pants rule); the hardware SHA-256 one gets its CPU features
ZIG_OBJS=""
for F in src/c/loader/*.zig; do
    O="$OUT/$(basename "$F" .zig).o"
    CPU=""
    case "$F" in */sha256_hw.zig) [ "$ARCH" = x86_64 ] && CPU="-mcpu=baseline+sha+avx2" || CPU="-mcpu=baseline+sha2" ;; esac
    # shellcheck disable=SC2086
    $Z build-obj -target "$ARCH-linux-musl" $CPU -O ReleaseFast -fstrip -femit-bin="$O" "$F"
    ZIG_OBJS="$ZIG_OBJS $O"
done
SRCS=$(ls src/c/loader/*.c | grep -v -e '/main\.c$')
EXTRA=""
# Optional: ZSTD_DIR=<dir with zstd.c and zstd.h from the zstandard==0.23.0 sdist> tests the zstd path too.
if [ -n "${ZSTD_DIR:-}" ]; then
    $Z cc -target "$ARCH-linux-musl" -Os -std=gnu11 -ffunction-sections -fdata-sections -c \
        -o "$OUT/zstd.o" "$ZSTD_DIR/zstd.c"
    EXTRA="-DOCI2BIN_HAVE_ZSTD -I$ZSTD_DIR $OUT/zstd.o"
fi
# shellcheck disable=SC2086
$Z cc -target "$ARCH-linux-musl" -static -Os -std=gnu11 -Wall -Wextra -Werror -ffile-prefix-map="$PWD"=. \
    -Isrc/c/loader -Itests/c/loader -o "$OUT/$T" "tests/c/loader/$T.c" $SRCS $ZIG_OBJS $EXTRA
# A foreign-architecture test binary runs under qemu-user (e.g. aarch64 on an x86_64 host).
if [ "$ARCH" = "$(uname -m)" ]; then
    "$OUT/$T"
else
    "qemu-$ARCH-static" "$OUT/$T"
fi
