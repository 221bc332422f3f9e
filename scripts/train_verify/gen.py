"""train-verify (issue 13): make darknet-train style cases with pjreddie Darknet (oracle harness /tmp/tv/harness)."""

import json
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

HARNESS = "/tmp/tv/harness"
COMMIT = "f6afaabcdf85f77e7aff2ec55c020c0e297c77f9"
OUT = Path("/tmp/tv/cases")


def perturb(path: Path, seed: int) -> None:
    """Perturb every stored float: v*(1+.2u) + .05w (keeps rolling variances positive)."""
    raw = Path(path).read_bytes()
    major, minor = struct.unpack("<ii", raw[:8])
    hb = 20 if (major * 10 + minor) >= 2 else 16
    v = np.frombuffer(raw[hb:], np.float32).copy()
    rng = np.random.default_rng(seed)
    v = v * (1 + 0.2 * rng.uniform(-1, 1, v.shape).astype(np.float32)) + 0.05 * rng.uniform(
        -1, 1, v.shape
    ).astype(np.float32)
    Path(path).write_bytes(raw[:hb] + v.astype(np.float32).tobytes())


def header(path: Path) -> dict[str, int]:
    raw = Path(path).read_bytes()
    major, minor, rev = struct.unpack("<iii", raw[:12])
    seen = (
        struct.unpack("<Q", raw[12:20])[0]
        if major * 10 + minor >= 2
        else struct.unpack("<i", raw[12:16])[0]
    )
    return {"major": major, "minor": minor, "revision": rev, "seen": seen}


def make(
    name: str,
    cfg: str,
    K: int,
    ymaker: Callable[[int, int, np.random.Generator], np.ndarray],
    seed: int = 1,
    srand: int = 0,
    seen: int = 0,
    desc: str = "",
    perturb_w: bool = True,
    reparse: bool = False,
) -> None:
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "case.cfg").write_text(cfg)
    r = subprocess.run(
        [HARNESS, "init", str(d / "case.cfg"), str(d / "init.weights"), str(seed), str(seen)],
        capture_output=True,
        text=True,
        check=True,
    )
    info = [ln for ln in r.stderr.splitlines() if ln.startswith("INFO")][0].split()
    inputs, truths, nb, sub = int(info[2]), int(info[4]), int(info[6]), int(info[8])
    if perturb_w:
        perturb(d / "init.weights", seed)
    rows = nb * sub
    rng = np.random.default_rng(seed + 100)
    # infer C,H,W from the cfg's [net]
    net = dict(ln.split("=", 1) for ln in cfg.split("[", 2)[1].splitlines()[1:] if "=" in ln)
    c, h, w = int(net.get("channels", 3)), int(net["height"]), int(net["width"])
    x = rng.random((rows, c, h, w), dtype=np.float32)
    assert c * h * w == inputs, (c, h, w, inputs)
    y = ymaker(rows, truths, rng).astype(np.float32)
    assert y.shape == (rows, truths), (y.shape, truths)
    np.save(d / "X.npy", x)
    np.save(d / "Y.npy", y)
    x.tofile(d / "X.raw")
    y.tofile(d / "Y.raw")
    r = subprocess.run(
        [
            HARNESS,
            "train",
            str(d / "case.cfg"),
            f"seed:{seed}" if reparse else str(d / "init.weights"),
            str(d / "X.raw"),
            str(d / "Y.raw"),
            str(K),
            str(d),
            str(srand),
        ],
        capture_output=True,
        text=True,
    )
    (d / "X.raw").unlink()
    (d / "Y.raw").unlink()
    if r.returncode:
        print(name, "FAILED", r.stderr[-2000:])
        return
    calls = []
    for line in r.stderr.splitlines():
        if line.startswith("CALL"):
            _, k, sb, rb, loss, sa, t, lr, _i = line.split()
            calls.append(
                {
                    "call": int(k),
                    "seen_before": int(sb),
                    "rate_before_call": float(rb),
                    "loss": float(loss),
                    "seen_after": int(sa),
                    "update_called": True,
                    "lr_used_in_update": float(lr),
                    "update_batch": rows,
                    "t_after": int(t),
                }
            )
    man = {
        "case": name,
        "description": desc,
        "darknet_commit": COMMIT,
        "build": "pjreddie/darknet CPU build, Makefile GPU=0 CUDNN=0 OPENCV=0 OPENMP=0 DEBUG=0 (OPTS=-Ofast)",
        "harness": "train-verify harness (scripts/train_verify, notes in fixtures/darknet-train/TRAIN_VERIFY.md): parse_network_cfg, load_weights (or, reparsed_not_loaded, srand(fill seed) + parse_network_cfg), srand(train_srand), train_network x K, save_weights after call 1 and K",
        "fill": {
            "seed": seed,
            "darknet_random_init": True,
            "perturbed": perturb_w,
            "reparsed_not_loaded": reparse,
            "header_seen": seen,
        },
        "input_seed": seed + 100,
        "X": {"file": "X.npy", "shape": list(x.shape), "dtype": "float32"},
        "Y": {"file": "Y.npy", "shape": list(y.shape), "dtype": "float32"},
        "train_srand": srand,
        "network": {
            "inputs": inputs,
            "truths": truths,
            "batch_per_datum": nb,
            "subdivisions": sub,
            "batch_cfg": rows,
            "seen_loaded": seen,
        },
        "K": K,
        "weights_headers": {
            f: header(d / f) for f in ("init.weights", "after_1.weights", "after_K.weights")
        },
        "calls": calls,
    }
    (d / "manifest.json").write_text(json.dumps(man, indent=1))
    print(name, "ok", [c["loss"] for c in calls], sum(p.stat().st_size for p in d.iterdir()))


def onehot(rows: int, truths: int, rng: np.random.Generator) -> np.ndarray:
    y = np.zeros((rows, truths))
    y[np.arange(rows), rng.integers(0, truths, rows)] = 1
    return y


def regress(rows: int, truths: int, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1, 1, (rows, truths))


def yolo_boxes(nbox: int) -> Callable[[int, int, np.random.Generator], np.ndarray]:
    def f(rows: int, truths: int, rng: np.random.Generator) -> np.ndarray:
        y = np.zeros((rows, truths))
        for r in range(rows):
            for b in range(nbox):
                y[r, b * 5 : b * 5 + 5] = [
                    rng.uniform(0.1, 0.9),
                    rng.uniform(0.1, 0.9),
                    rng.uniform(0.05, 0.6),
                    rng.uniform(0.05, 0.6),
                    rng.integers(0, 2),
                ]
        return y

    return f


if __name__ == "__main__":
    import cases

    only = sys.argv[1:]
    for name, spec in cases.CASES.items():
        if not only or name in only:
            make(name, **spec)
