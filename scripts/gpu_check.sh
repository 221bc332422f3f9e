#!/usr/bin/env bash
# The GPU check of issue 16 in one script (under 8 minutes on one GPU):
#   1. the CUDA parity tests (pytest -m cuda: every layer case and net, both BN modes, fused, sizes);
#   2. darkconv bench --device cuda, fp32 / fp16 / bf16: darknet53 vs resnet50/101/152, densenet201
#      (cfg-built) and the torchvision/timm peers that are installed, at 256x256;
#   3. the detector table at 416 (yolov3, yolov3-tiny, and yolov4/yolov4-tiny when their cfgs ship),
#      batch 1 and 8, fp32 and fp16;
#   4. the training-step benchmark (scripts/bench_train.py: darknet53 step vs timm, CPU) when it exists.
# Writes gpu_check.json and gpu_check.md into --out (default: $TMPDIR/darkconv-gpu-check) and prints
# the Markdown. `--device cpu` runs the same steps at toy sizes as a quick smoke test (CI).
#
#   scripts/gpu_check.sh [--device cuda|cpu] [--out DIR] [--step-timeout SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec python scripts/gpu_check.py "$@"
