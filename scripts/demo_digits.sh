#!/usr/bin/env bash
# Classifier demo: scikit-learn's bundled digits (1,797 real 8x8 handwritten digits, no download)
# -> PNGs + a .data file -> `darkconv train` on the CPU -> top-1 of the written .weights over the
# held-out split through darkconv predict's code path.  Needs: darkconv's dependencies +
# scikit-learn (+ matplotlib for the chart).  Generated files go to $OUT (default /tmp).
#
#   scripts/demo_digits.sh            # from the repository root of a fresh clone
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
PY="${PYTHON:-python}"
OUT="${OUT:-/tmp/darkconv-demo-digits}"
CHART=()
if "$PY" -c "import matplotlib" 2>/dev/null; then CHART=(--chart "$OUT/chart.png"); fi

rm -rf "$OUT"
"$PY" scripts/demo/make_digits.py "$OUT"
start=$(date +%s)
"$PY" -m darkconv train scripts/demo/digits.cfg --data "$OUT/digits.data" --workers 1 "${CHART[@]}"
echo "training: $(( $(date +%s) - start )) s wall"
"$PY" scripts/demo/predict_split.py scripts/demo/digits.cfg "$OUT/backup/digits.weights" \
    "$OUT/digits.data" --check 5 | tail -3
