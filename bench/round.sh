#!/usr/bin/env bash
# The CPU side by side of the README's table: RUNS alternating runs of PyTorch (every mode) and
# spat per thread count, then each program's best run per row (bench/best_of.py), against
# PyTorch's default mode and against its fastest mode in that row. Meant for an idle machine.
#
#   bench/round.sh PATH/TO/spat [RUNS]          # RUNS defaults to 4
#
# Environment (defaults in brackets):
#   MODELS [tiny,wrn-16-2,resnet-18]   WORKLOADS [standard,trades-spat-pgd10,pgd20-eval]
#   THREAD_COUNTS ["1 2"]              BATCH [32]   WARMUP [2]   REPEATS [5]
#   TORCH_MODES [default,channels-last]      PyTorch's modes in every run;
#   COMPILE_MODES [compile,compile-channels-last] and COMPILE_RUNS [1]: the torch.compile modes are
#       measured too in the first COMPILE_RUNS runs only (each row compiles for about a minute on
#       an idle machine; the compile time is reported apart and is not in any step time);
#   OUT [bench-round]   PYTHON [/tmp/tv/bin/python]
#
# Duration on the idle 2-core machine (estimated from the step times in bench/NOTES.md): about
# 7 minutes per run at one thread and 4 at two without compiling, plus about 25 minutes per
# thread count for the compiled modes: about 1 h 30 min for the defaults.
#
# Prints the table (markdown) and writes it to $OUT/table.md; the raw JSON of every run stays in
# $OUT/run<R>-t<T>/.
set -euo pipefail
SPAT="$(realpath "${1:?usage: bench/round.sh PATH/TO/spat [RUNS]}")"
RUNS="${2:-4}"
here="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-bench-round}"
MODELS="${MODELS:-tiny,wrn-16-2,resnet-18}"
WORKLOADS="${WORKLOADS:-standard,trades-spat-pgd10,pgd20-eval}"
THREAD_COUNTS="${THREAD_COUNTS:-1 2}"
TORCH_MODES="${TORCH_MODES:-default,channels-last}"
COMPILE_MODES="${COMPILE_MODES:-compile,compile-channels-last}"
COMPILE_RUNS="${COMPILE_RUNS:-1}"
export PYTHON="${PYTHON:-/tmp/tv/bin/python}" DEVICE=cpu
mkdir -p "$OUT"
for run in $(seq 1 "$RUNS"); do
    for t in $THREAD_COUNTS; do
        modes="$TORCH_MODES"
        if [[ "$run" -le "$COMPILE_RUNS" && -n "$COMPILE_MODES" ]]; then
            modes="$modes,$COMPILE_MODES"
        fi
        echo "run $run, $t thread(s), PyTorch modes $modes ($(date +%T); load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
        THREADS="$t" BENCH_OUT="$OUT/run$run-t$t" TORCH_MODES="$modes" "$here/side_by_side.sh" "$SPAT" \
            --models "$MODELS" --workloads "$WORKLOADS" --batch "${BATCH:-32}" --precisions fp32 \
            --warmup "${WARMUP:-2}" --repeats "${REPEATS:-5}" > /dev/null
    done
done
groups=()
for t in $THREAD_COUNTS; do
    dirs=$(seq -f "$OUT/run%g-t$t" 1 "$RUNS" | paste -sd,)
    groups+=("$t=$dirs")
done
"$PYTHON" "$here/best_of.py" "${groups[@]}" | tee "$OUT/table.md"
