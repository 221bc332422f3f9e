#!/usr/bin/env bash
# Detector demo: generated shapes (circle, square, triangle) on textured backgrounds with YOLO
# labels -> `darkconv train` of a scaled-down yolov3-tiny from scratch on the CPU ->
# `darkconv map` (AlexeyAB's detector map, all-point AP) on the held-out split with the written
# .weights.  Needs darkconv's dependencies (+ matplotlib for the chart).  Files go to $OUT.
#
#   scripts/demo_shapes.sh            # from the repository root of a fresh clone
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
PY="${PYTHON:-python}"
OUT="${OUT:-/tmp/darkconv-demo-shapes}"
CHART=()
if "$PY" -c "import matplotlib" 2>/dev/null; then CHART=(--chart "$OUT/chart.png" --map 500); fi

rm -rf "$OUT"
"$PY" scripts/demo/make_shapes.py "$OUT"
start=$(date +%s)
"$PY" -m darkconv train scripts/demo/shapes.cfg --data "$OUT/shapes.data" --workers 2 "${CHART[@]}"
echo "training: $(( $(date +%s) - start )) s wall"
"$PY" -m darkconv map scripts/demo/shapes.cfg "$OUT/backup/shapes_final.weights" \
    --data "$OUT/shapes.data" | tee "$OUT/map.txt" | tail -8
"$PY" -c "import re,sys; t=open(sys.argv[1]).read(); \
print('mAP@0.5 = %.3f' % float(re.search(r'\(mAP@0\.50\) = ([0-9.]+)', t).group(1)))" "$OUT/map.txt"
