"""Training refuses what it does not reproduce, with one clear line naming the layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import darkconv
from darkconv.errors import UnsupportedError
from darkconv.train import make_optimizer, train_step

RNN_CFG = """[net]
batch=4
height=1
width=6
channels=1
time_steps=2

[rnn]
output=5
hidden=4
activation=leaky

[connected]
output=3
activation=linear

[softmax]
"""


def test_recurrent_training_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "rnn.cfg"
    cfg.write_text(RNN_CFG)
    model = darkconv.load(cfg)
    opt, sched = make_optimizer(model)
    x = np.zeros((8, 1, 1, 6), np.float32)  # batch * time_steps rows
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2, 0, 1]]
    with pytest.raises(UnsupportedError, match=r"layer 0: .*\[rnn\]"):
        train_step(model, x, y, opt, sched)
