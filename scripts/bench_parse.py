"""Parse-side benchmark (not a test): cfg -> Network for every shipped cfg.

Reports, in one run, darkconv's grammar + graph time next to a naive parse that only
splits lines into sections and key=value pairs (no types, no shapes), for all 45 cfgs
and for yolov3.cfg alone, plus the wall time of a parse-only CLI call (no torch import).

    python scripts/bench_parse.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from darkconv.parse.cfg import parse_cfg
from darkconv.parse.graph import network_from_document, shipped_cfg_dir


def naive(text: str) -> list[tuple[str, dict[str, str]]]:
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.replace(" ", "").replace("\t", "")
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            sections.append((line.strip("[]"), {}))
        elif "=" in line and sections:
            k, v = line.split("=", 1)
            sections[-1][1].setdefault(k, v)
    return sections


def timed(fn, texts, repeat):
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        for name, text in texts:
            fn(name, text)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    files = sorted(shipped_cfg_dir().glob("*.cfg"))
    texts = [(str(p), p.read_text()) for p in files]
    yolo = [t for t in texts if t[0].endswith("/yolov3.cfg")]
    network_from_document(parse_cfg(texts[0][1], texts[0][0]))  # warm the grammar cache

    def full(name, text):
        network_from_document(parse_cfg(text, name))

    def grammar_only(name, text):
        parse_cfg(text, name)

    print(f"{'set':<14}{'naive split':>14}{'grammar':>12}{'grammar+graph':>16}{'ratio':>8}")
    for label, subset in ((f"all {len(texts)} cfgs", texts), ("yolov3.cfg", yolo)):
        n = timed(lambda _n, t: naive(t), subset, args.repeat)
        g = timed(grammar_only, subset, args.repeat)
        f = timed(full, subset, args.repeat)
        print(f"{label:<14}{n * 1e3:>12.2f}ms{g * 1e3:>10.2f}ms{f * 1e3:>14.2f}ms{f / n:>7.1f}x")

    cmd = [sys.executable, "-m", "darkconv", "build", "yolov3", "--json"]
    walls = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
    probe = "import sys, darkconv.cli.main, darkconv.parse.graph; darkconv.graph.load_network('yolov3'); print('torch' in sys.modules)"
    torch_loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"CLI `darkconv build yolov3 --json`: median {statistics.median(walls):.3f} s wall "
        f"(min {min(walls):.3f} s); torch imported by the parse side: {torch_loaded}"
    )


if __name__ == "__main__":
    main()
