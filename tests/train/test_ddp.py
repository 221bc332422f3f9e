"""torchrun's many processes: 2 gloo ranks on CPU, a fixed raw batch split across them, equal
one process with the whole batch (a network without batch norm, where that is exact)."""

from __future__ import annotations

import multiprocessing
import os
import socket
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("darkconv.train.step", reason="needs the exact training step (issue 13)")

if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

NET = """[net]
batch={batch}
height=8
width=8
channels=3
learning_rate=0.1
momentum=0.9
decay=0.0005
policy=constant
max_batches=10

[convolutional]
filters=6
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=3
size=1
stride=1
pad=1
activation=linear

[avgpool]

[softmax]
"""
ROWS, STEPS = 8, 3


def _train(cfg: str, init: str, x: np.ndarray, y: np.ndarray, dist: object = None) -> dict:
    from darkconv.nn.builder import load
    from darkconv.train import TrainHyper, make_optimizer, train_step
    from darkconv.train.ddp import averaged, broadcast_model

    model = load(cfg, init)
    if dist is not None:
        broadcast_model(model)
    opt, sched = make_optimizer(model, TrainHyper.from_network(model.network))
    if dist is not None:
        opt = averaged(opt, dist)
    losses = []
    for _ in range(STEPS):
        losses.append(train_step(model, x, y, opt, sched, semantics="cpu").loss)
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return {"state": state, "losses": losses}


def _rank(rank: int, port: int, tmp: str, queue: multiprocessing.Queue) -> None:
    from darkconv.train.ddp import init_distributed

    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})  # fmt: skip
    torch.set_num_threads(1)
    dist = init_distributed("cpu")
    assert dist is not None and dist.world == 2
    x, y = np.load(f"{tmp}/x.npy"), np.load(f"{tmp}/y.npy")
    half = ROWS // 2
    part = slice(rank * half, (rank + 1) * half)
    out = _train(f"{tmp}/half.cfg", f"{tmp}/init.weights", x[part], y[part], dist)
    queue.put((rank, out))
    torch.distributed.destroy_process_group()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process(tmp_path: Path) -> None:
    from darkconv.nn.builder import build
    from darkconv.weights.io import write_weights

    (tmp_path / "whole.cfg").write_text(NET.format(batch=ROWS))
    (tmp_path / "half.cfg").write_text(NET.format(batch=ROWS // 2))
    torch.manual_seed(0)
    model = build(str(tmp_path / "whole.cfg"))
    write_weights(tmp_path / "init.weights", model.state_dict(), model.network)
    rng = np.random.default_rng(0)
    x = rng.random((ROWS, 3, 8, 8), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(3, size=ROWS)]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    port = _port()
    procs = [ctx.Process(target=_rank, args=(r, port, str(tmp_path), queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    whole = _train(str(tmp_path / "whole.cfg"), str(tmp_path / "init.weights"), x, y)
    for key, ref in whole["state"].items():
        if key == "header":
            continue
        for rank in (0, 1):  # every rank holds the same weights after each averaged update
            got = results[rank]["state"][key]
            err = np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12)
            assert err < 1e-5, (key, rank, err)
    # each rank counts its own images, as each Darknet GPU does: seen = STEPS * ROWS / 2
    assert int(results[0]["state"]["header"][3]) == STEPS * ROWS // 2
    # the loss a rank reports is its half's; the mean of the two is the whole batch's
    mean = (np.array(results[0]["losses"]) + np.array(results[1]["losses"])) / 2
    np.testing.assert_allclose(mean, whole["losses"], rtol=1e-5)
