#!/usr/bin/env bash
# spat vs the reference AutoAttack (fra31/auto-attack) on one checkpoint and the same images, on the
# CPU: clean, PGD-20, APGD-CE, APGD-T and AutoAttack-standard accuracies, and AutoAttack's wall time
# (per attack and in all), side by side.
#
#   scripts/autoattack_compare.sh CHECKPOINT [MODEL] [N] [EPS]
#
# Needs AUTOATTACK_DIR (a checkout of https://github.com/fra31/auto-attack), PYTHON (torch,
# torchattacks, safetensors; default python3) and SPAT_DATA_DIR (default ../shared/data).
# THREADS (default 2) threads each; AA_ONLY=1 runs clean accuracy and AutoAttack only (no
# separate PGD-20, APGD-CE and APGD-T runs on either side: about half the time); SPAT (default:
# target/release/spat, built first) picks the binary; AA_OUT the output folder.
# Writes target/autoattack-compare/{spat.json,reference.json,table.md} and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:?usage: $0 CHECKPOINT [MODEL] [N] [EPS]}
model=${2:-tiny}
n=${3:-1000}
eps=${4:-8/255}
data=${SPAT_DATA_DIR:-../shared/data}
py=${PYTHON:-python3}
out=${AA_OUT:-target/autoattack-compare}
mkdir -p "$out"
# On a machine shared with other jobs, OpenMP threads that spin while waiting slow PyTorch's small
# CPU ops by up to 100x (measured here: 9 ms vs 1,677 ms per forward+backward of `tiny` on 5
# images); passive waiting is what an idle machine gives anyway.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
threads=${THREADS:-2}
attacks=clean,pgd20,apgd-ce,apgd-t,autoattack
only=()
if [[ "${AA_ONLY:-0}" == 1 ]]; then
    attacks=clean,autoattack
    only=(--autoattack-only)
fi
spat=${SPAT:-}
if [[ -z "$spat" ]]; then
    cargo build --release -p spat-cli
    spat=target/release/spat
fi
echo "spat ($(date +%T))" >&2
RAYON_NUM_THREADS=$threads "$spat" eval --model "$model" --checkpoint "$ckpt" --dataset cifar10 \
    --data-dir "$data" --test-subset "$n" --eps "$eps" --batch-size 250 --seed 0 \
    --attacks "$attacks" --json > "$out/spat.json"
echo "reference ($(date +%T))" >&2
"$py" scripts/autoattack_compare.py --reference "${AUTOATTACK_DIR:?set AUTOATTACK_DIR}" \
    --checkpoint "$ckpt" --model "$model" --data-dir "$data" --n "$n" --eps "$eps" --bs 250 \
    --threads "$threads" "${only[@]}" --out "$out/reference.json" --spat "$out/spat.json" \
    | tee "$out/table.md"
