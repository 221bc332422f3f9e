#!/usr/bin/env bash
# The CPU tables of README "Speed": darkconv bench with the optional peers (torchvision, timm,
# OpenCV DNN) installed in a throw-away virtual environment outside the repository.
# PyPI's torchvision does not import beside the system torch 2.13 CPU build, so the venv takes
# torch 2.14.1 + torchvision 0.29.1 (about 5.5 GB) and OpenCV < 5 (OpenCV 5 has no Darknet importer).
set -euo pipefail
VENV=${BENCH_VENV:-/tmp/benchenv}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$VENV/bin/darkconv" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
  "$VENV/bin/pip" install -q timm "opencv-python-headless<5" click numpy lark pillow
  "$VENV/bin/pip" install -q --no-deps -e "$ROOT"
fi
B="$VENV/bin/darkconv"
OUT=${BENCH_OUT:-.}
uptime
"$B" bench --threads 2 --runs 10 --warmup 3 --json "$OUT/bench_default.json"
"$B" bench darknet53 --channels-last --threads 2 --runs 20 --warmup 3 --no-memory \
  --json "$OUT/bench_darknet53.json"
"$B" bench darknet53 --channels-last --compile --threads 2 --runs 20 --warmup 3 --no-memory \
  --json "$OUT/bench_darknet53_compile.json"
"$B" bench darknet53 --channels-last --winograd --threads 2 --runs 20 --warmup 3 --no-memory \
  --json "$OUT/bench_darknet53_winograd.json"
"$B" bench darknet53 --channels-last --compile --winograd --threads 2 --runs 20 --warmup 3 \
  --no-memory --json "$OUT/bench_darknet53_compile_winograd.json"
uptime
