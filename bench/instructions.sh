#!/usr/bin/env bash
# Instructions one `spat bench` step executes (one thread, no warm-up, one timed step), counted by
# valgrind's callgrind: the same count on a loaded machine as on an idle one, so old and new
# binaries can be compared while other jobs run. Prints the total, then the functions with the
# most instructions (inclusive of what they call, `--inclusive=yes`), and keeps the callgrind file.
#
#   bench/instructions.sh SPAT MODEL WORKLOAD [BATCH] [TOP]
#       e.g. bench/instructions.sh target/release/spat wrn-16-2 pgd20-eval 32 25
#
# valgrind does not emulate AVX-512: under it the kernels take their AVX2 paths (the `gemm`
# crate's AVX2 microkernels, no direct convolutions), so counts compare binaries on those paths.
# Callgrind runs about 50 times slower than the program (a WRN-16-2 PGD-20 step: minutes).
set -euo pipefail
spat="${1:?usage: bench/instructions.sh SPAT MODEL WORKLOAD [BATCH] [TOP]}"
model="${2:?model}"
workload="${3:?workload}"
batch="${4:-32}"
top="${5:-25}"
out="${CALLGRIND_OUT:-callgrind.$(basename "$spat").$model.$workload.$batch}"
RAYON_NUM_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$out" "$spat" bench \
    --models "$model" --workloads "$workload" --batch "$batch" --precisions fp32 \
    --warmup 0 --repeats 1 > /dev/null 2> "$out.log"
grep -E '^==[0-9]+== (Collected|I +refs)' "$out.log" | tail -1
callgrind_annotate --inclusive=yes "$out" 2>/dev/null | sed -n '/^Ir/,$p' | head -n $((top + 3))
