"""Inference shortcuts of darkconv.nn.pool that must give the same values as the plain form
(the pools themselves are checked against Darknet in test_modules.py and the net tests)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from darkconv.nn import pool as pool_module
from darkconv.nn.pool import FLT_MAX, MaxPool


@pytest.mark.parametrize(
    ("size", "stride", "padding", "hw"),
    [(5, 1, 4, (13, 13)), (9, 1, 8, (13, 11)), (13, 1, 12, (13, 13)), (7, 2, 6, (15, 10)),
     (6, 3, 5, (11, 14)), (5, 1, 0, (9, 9))],
)  # fmt: skip
@pytest.mark.parametrize("channels_last", [False, True])
def test_separable_maxpool_equals_the_2d_window(
    size: int, stride: int, padding: int, hw: tuple[int, int], channels_last: bool
) -> None:
    """From ``size`` 5 the max is taken in two 1-D passes: the same values as one 2-D pass over
    the same -FLT_MAX-padded map, ties and all (integers make many ties)."""
    pool = MaxPool((6, *hw), size, stride, padding)
    x = torch.randint(-3, 4, (2, 6, *hw)).float()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        got = pool(x)
    _, oh, ow = pool.out_shape
    padded = pool_module._window_pad(x, hw, (oh, ow), size, (stride, stride), padding, -FLT_MAX)
    want = F.max_pool2d(padded, size, stride)[:, :, :oh, :ow]
    assert got.shape == (2, *pool.out_shape)
    assert torch.equal(got, want)


def test_maxpool_under_autograd_keeps_the_2d_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under autograd the 2-D pass runs, so a tie sends the gradient where Darknet's
    first-in-row-order maximum does (two 1-D passes would pick the first in column order)."""
    calls: list[object] = []
    real = F.max_pool2d

    def spy(x: torch.Tensor, kernel: object, *args: object, **kwargs: object) -> torch.Tensor:
        calls.append(kernel)
        return real(x, kernel, *args, **kwargs)

    monkeypatch.setattr(pool_module.F, "max_pool2d", spy)
    pool = MaxPool((1, 5, 5), 5, 1, 4)
    x = torch.zeros(1, 1, 5, 5, requires_grad=True)
    pool(x).sum().backward()
    assert calls == [5]
    with torch.no_grad():
        pool(x)
    assert calls == [5, (5, 1), (1, 5)]
