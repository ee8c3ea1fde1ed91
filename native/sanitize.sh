#!/usr/bin/env sh
# Build the kernels with AddressSanitizer + UBSan into the standalone fuzz driver and run it.
# Usage: native/sanitize.sh [iterations] [seed]   (from anywhere; needs gcc or clang)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${TMPDIR:-/tmp}/nnc_fuzz
cc=${CC:-cc}
$cc -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    -pthread -I"$here/include" -I"$here" \
    "$here/dense.c" "$here/sparse.c" "$here/im.c" "$here/cser.c" "$here/huffman_codes.c" "$here/ham.c" "$here/sham.c" \
    "$here/lowrank.c" "$here/psm.c" "$here/sss.c" "$here/dct.c" "$here/cabac.c" "$here/rdoq.c" "$here/watchdog.c" "$here/fuzz_main.c" \
    -lm -o "$out"
ASAN_OPTIONS=detect_leaks=1 "$out" "${1:-2000}" "${2:-1}"
