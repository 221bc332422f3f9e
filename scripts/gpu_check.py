"""The GPU check of issue 16 in one run: CUDA parity tests, the seed's classifier table in
fp32/fp16/bf16, the detector table at 416, and a training-step benchmark when one exists.

Run through ``scripts/gpu_check.sh`` (see there).  Every step is a fresh process
(``python -m pytest`` / ``python -m darkconv bench ... --json``); a step that fails is recorded
and the others still run.  Writes ``gpu_check.json`` (every step: command, exit code, seconds,
the bench JSON or the pytest summary) and ``gpu_check.md`` (the tables) into ``--out``, and
prints the Markdown.  ``--device cpu`` runs the same steps at toy sizes: a smoke test for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: The seed's GPU figures (YOLOv3 paper, Titan X, 256x256), shown beside ours.
SEED_GPU_MS = {"darknet53": 11.4, "resnet101": 18.5, "resnet152": 26.8}

CLASSIFIERS = ["darknet53", "resnet50", "resnet101", "resnet152", "densenet201"]
DETECTORS = ["yolov3", "yolov3-tiny", "yolov4", "yolov4-tiny"]


def _shipped(names: list[str]) -> list[str]:
    """The names among ``names`` that resolve to a shipped cfg (yolov4: cfg/alexeyab/)."""
    from darkconv.errors import DarkconvError
    from darkconv.parse.graph import resolve_cfg

    found = []
    for name in names:
        try:
            resolve_cfg(name)
        except (DarkconvError, OSError):
            continue
        found.append(name)
    return found


def steps(device: str, out: Path) -> list[dict[str, Any]]:
    """The commands to run, each ``{"name", "cmd", "json"}``."""
    py = sys.executable
    cuda = device == "cuda"
    result: list[dict[str, Any]] = [
        {"name": "CUDA parity tests (pytest -m cuda)", "json": None,
         "cmd": [py, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"]},
    ]  # fmt: skip
    bench = [py, "-m", "darkconv", "bench", "--device", device]
    if cuda:
        common = ["--size", "256", "--runs", "20", "--warmup", "5"]
        classifiers = CLASSIFIERS
    else:  # smoke test: toy sizes, one run, no peers
        common = ["--size", "64", "--runs", "1", "--warmup", "0", "--no-peers", "--no-memory"]
        classifiers = ["darknet53"]
    for dtype in ("fp32", "fp16", "bf16"):
        path = out / f"bench_{dtype}.json"
        result.append({
            "name": f"classifiers {dtype}", "json": str(path),
            "cmd": [*bench, *classifiers, *common, "--dtype", dtype, "--json", str(path)],
        })  # fmt: skip
    detectors = _shipped(DETECTORS) if cuda else ["yolov3-tiny"]
    size = ["--size", "416"] if cuda else ["--size", "64"]
    for dtype in ("fp32", "fp16") if cuda else ("fp32",):
        path = out / f"detectors_{dtype}.json"
        result.append({
            "name": f"detectors {dtype}", "json": str(path),
            "cmd": [*bench, *detectors, *common, *size, "--batch", "1,8" if cuda else "1,2",
                    "--dtype", dtype, "--json", str(path)],
        })  # fmt: skip
    train_script = ROOT / "scripts" / "bench_train.py"
    if cuda and train_script.is_file():  # darknet53 train step vs timm (CPU; needs timm): its table
        result.append({
            "name": "training step (scripts/bench_train.py)", "json": None,
            "cmd": [py, str(train_script), "--runs", "5", "--warmup", "1"],
        })  # fmt: skip
    return result


def run_step(step: dict[str, Any], timeout: float) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            step["cmd"], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stdout, stderr = 124, str(exc.stdout or ""), f"timed out after {timeout:.0f} s"
    record: dict[str, Any] = {
        "name": step["name"],
        "command": " ".join(step["cmd"][1:]),
        "rc": rc,
        "seconds": round(time.perf_counter() - start, 1),
    }
    if step["json"] and rc == 0 and Path(step["json"]).is_file():
        record["result"] = json.loads(Path(step["json"]).read_text())
    elif step["json"] is None:
        lines = [ln for ln in stdout.splitlines() if ln.strip()]
        record["result"] = {"summary": lines[-1] if lines else "", "stdout": stdout[-4000:]}
    if rc != 0:
        record["error"] = (stderr.strip().splitlines() or stdout.strip().splitlines() or [""])[-1]
    return record


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def bench_markdown(record: dict[str, Any]) -> list[str]:
    data = record["result"]
    s = data["settings"]
    m = data["machine"]
    size = s["size"] if isinstance(s["size"], list) else [s["size"], s["size"]]
    lines = [
        f"### {record['name']}: {s['device']} {m.get('gpu') or m.get('cpu')}, {s['dtype']}, "
        f"{size[0]}x{size[1]}, {data['runs']} runs (median), torch {m.get('torch')}",
        "",
        "| model | batch | median ms | img/s | vs "
        + str(data["reference"])
        + " | vs OpenCV | seed GPU ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["models"]:
        on_gpu = r["kind"] == "darkconv" and s["device"] == "cuda" and size == [256, 256]
        seed = SEED_GPU_MS.get(r["target"]) if on_gpu else None
        lines.append(
            f"| {r['name']} | {r.get('batch', s['batch'])} | {_cell(r['median_ms'], '.2f')} | "
            f"{_cell(r.get('images_per_s'), '.1f')} | {_cell(r['ratio'], '.2f')} | "
            f"{_cell(r.get('vs_opencv'), '.2f')} | {_cell(seed, '.1f')} |"
        )
    return [*lines, ""]


def markdown(report: dict[str, Any]) -> str:
    out = [f"## darkconv GPU check ({report['device']}, {report['finished']})", ""]
    out += ["| step | exit | seconds | result |", "|---|---:|---:|---|"]
    for rec in report["steps"]:
        res = rec.get("error") or (rec.get("result") or {}).get("summary", "ok")
        out.append(f"| {rec['name']} | {rec['rc']} | {rec['seconds']} | {res} |")
    out.append("")
    for rec in report["steps"]:
        if rec["rc"] == 0 and "models" in (rec.get("result") or {}):
            out += bench_markdown(rec)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "darkconv-gpu-check"))
    parser.add_argument("--step-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"device": args.device, "started": time.strftime("%Y-%m-%d %H:%M")}
    records = []
    for step in steps(args.device, out):
        print(f"gpu_check: {step['name']} ...", file=sys.stderr, flush=True)
        records.append(run_step(step, args.step_timeout))
        print(f"gpu_check:   exit {records[-1]['rc']} in {records[-1]['seconds']} s",
              file=sys.stderr, flush=True)  # fmt: skip
    report["steps"] = records
    report["finished"] = time.strftime("%Y-%m-%d %H:%M")
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    text = markdown(report)
    (out / "gpu_check.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}", file=sys.stderr)
    failed = [r["name"] for r in records if r["rc"] != 0 and not _only_skipped(r)]
    return 1 if failed else 0


def _only_skipped(record: dict[str, Any]) -> bool:
    """pytest exits 5 when ``-m cuda`` selects nothing to run on a CPU-only machine."""
    summary = str((record.get("result") or {}).get("summary", ""))
    return record["rc"] == 5 or bool(re.search(r"\bskipped\b", summary) and "failed" not in summary)


if __name__ == "__main__":
    sys.exit(main())
