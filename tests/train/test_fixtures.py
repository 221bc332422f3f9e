"""Every darknet-train fixture case through the Python API: per call the loss, the learning rate,
``seen``; per dumped call every buffer (outputs, batch statistics, deltas, update buffers); the
weights and header after call 1 and call K.  A new case folder needs no new test code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from train_util import LOSS_TOL, cases, check_trace, check_weights, manifest, run_api

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_through_api(case: Path) -> None:
    man = manifest(case)
    results, traces, model = run_api(case)
    for res, call in zip(results, man["calls"], strict=True):
        assert res.seen == call["seen_after"]
        assert res.updated == call["update_called"]
        if call["update_called"]:
            assert np.float32(res.lr) == np.float32(call["lr_used_in_update"])
        assert abs(res.loss - call["loss"]) <= LOSS_TOL * abs(call["loss"]), (
            res.loss,
            call["loss"],
        )
    if (case / "after_K.weights").is_file():
        check_weights(model, case / "after_K.weights")
    for call, arrays in traces.items():
        check_trace(case, call, arrays)
