#!/usr/bin/env bash
# PyTorch's and spat's benchmark back to back on the same device, then spat's table with the
# ratio spat / PyTorch per row. Both programs take the same selection flags, so any of
# --models --workloads --precisions --batch --warmup --repeats given here reach both.
#
#   bench/side_by_side.sh ./spat --models resnet-18 --precisions tf32,bf16
#
# Environment: DEVICE (default cuda:0), BENCH_OUT (default bench-results), PYTHON (python3),
# THREADS (CPU threads for both: sets OMP_NUM_THREADS and MKL_NUM_THREADS for PyTorch and
# RAYON_NUM_THREADS for spat; unset, each uses every core), TORCH_MODES (PyTorch's modes, e.g.
# default,channels-last,compile: see bench/pytorch_reference.py; unset, its default mode only).
# spat's table compares each row with the fastest of PyTorch's modes and names it.
#
#   DEVICE=cpu THREADS=1 bench/side_by_side.sh ./spat --models tiny,wrn-16-2,resnet-18 \
#       --batch 32 --precisions fp32 --warmup 1 --repeats 3
set -euo pipefail
if [[ -n "${THREADS:-}" ]]; then
    export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" RAYON_NUM_THREADS="$THREADS"
fi
SPAT="${1:?usage: bench/side_by_side.sh PATH/TO/spat [flags...]}"
shift
DEVICE="${DEVICE:-cuda:0}"
OUT="${BENCH_OUT:-bench-results}"
mkdir -p "$OUT"
"${PYTHON:-python3}" "$(dirname "$0")/pytorch_reference.py" --device "$DEVICE" \
    ${TORCH_MODES:+--modes "$TORCH_MODES"} --json "$OUT/pytorch.json" "$@"
"$SPAT" bench --device "$DEVICE" --json "$OUT/spat.json" --reference "$OUT/pytorch.json" "$@" \
    | tee "$OUT/table.md"
