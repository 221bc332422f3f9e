"""One training step of darknet53 (forward, backward, update; batch 8 at 224x224, CPU) in darkconv
(``train_step``: Darknet's exact step) against timm's hand-written darknet53 (cross-entropy +
torch.optim.SGD), in one interleaved run: medians of the step time, and the peak memory of each
step measured in a fresh child process (peak RSS minus the RSS before the first step).

    OMP_NUM_THREADS=2 python scripts/bench_train.py [--runs 10] [--warmup 2] [--semantics gpu]

Needs timm (an optional peer: ``pip install timm``; PyPI's timm needs torchvision, which does not
import beside the CPU-only torch 2.13 build, so run it in a venv like ``scripts/bench_cpu.sh``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH, SIZE, CLASSES = 8, 224, 1000


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1))  # type: ignore[union-attr]


def darkconv_step(semantics: str) -> Any:
    import darkconv
    from darkconv.parse import parse_network
    from darkconv.train import make_optimizer, train_step

    text = (ROOT / "cfg" / "darknet53.cfg").read_text()
    text = re.sub(r"(?m)^(height|width)=\d+", lambda m: f"{m.group(1)}={SIZE}", text)
    text = re.sub(r"(?m)^batch=\d+", f"batch={BATCH}", text)
    model = darkconv.build(parse_network(text, "darknet53.cfg")).set_semantics(semantics).train()
    opt, sched = make_optimizer(model)
    gen = np.random.default_rng(0)
    x = torch.from_numpy(gen.random((BATCH, 3, SIZE, SIZE), dtype=np.float32))
    y = torch.zeros(BATCH, CLASSES)
    y[torch.arange(BATCH), torch.from_numpy(gen.integers(0, CLASSES, BATCH))] = 1

    def step() -> None:
        train_step(model, x, y, opt, sched)

    return step


def timm_step() -> Any:
    import timm

    model = timm.create_model("darknet53", pretrained=False, num_classes=CLASSES).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    gen = np.random.default_rng(0)
    x = torch.from_numpy(gen.random((BATCH, 3, SIZE, SIZE), dtype=np.float32))
    y = torch.from_numpy(gen.integers(0, CLASSES, BATCH))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def child(which: str, semantics: str, steps: int) -> None:
    """Peak memory of the training steps in a fresh process (printed as JSON)."""
    torch.set_num_threads(2)
    step = darkconv_step(semantics) if which == "darkconv" else timm_step()
    before = _status_kib("VmRSS")
    for _ in range(steps):
        step()
    peak = _status_kib("VmHWM")  # this process's peak (ru_maxrss would include the parent's)
    print(json.dumps({"rss_before_kib": before, "peak_kib": peak, "step_peak_kib": peak - before}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--semantics", default="gpu")
    ap.add_argument("--child", choices=["darkconv", "timm"])
    args = ap.parse_args()
    if args.child:
        child(args.child, args.semantics, args.warmup + 1)
        return
    mem = {}
    for name in ("darkconv", "timm"):  # first, while this process is still small
        cmd = [sys.executable, __file__, "--child", name, "--semantics", args.semantics,
               "--warmup", str(args.warmup)]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        mem[name] = json.loads(out.strip().splitlines()[-1])
    torch.set_num_threads(2)
    steps = {"darkconv": darkconv_step(args.semantics), "timm": timm_step()}
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.runs):  # interleaved: both see the same machine load
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "semantics": args.semantics,
        "batch": BATCH,
        "size": SIZE,
        "median_s": med,
        "time_ratio": med["darkconv"] / med["timm"],
        "step_peak_mib": {k: v["step_peak_kib"] / 1024 for k, v in mem.items()},
        "process_peak_mib": {k: v["peak_kib"] / 1024 for k, v in mem.items()},
        "memory_ratio": mem["darkconv"]["step_peak_kib"] / mem["timm"]["step_peak_kib"],
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
