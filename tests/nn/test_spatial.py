"""Inference shortcuts of darkconv.nn.spatial that must give the same values as the plain
form (the layers themselves are checked against Darknet in test_modules.py and the net tests)."""

from __future__ import annotations

import pytest
import torch

from darkconv.nn.spatial import Upsample


@pytest.mark.parametrize("stride", [2, 3])
def test_upsample_keeps_channels_last(stride: int) -> None:
    up = Upsample((5, 4, 3), stride, 0.5)
    x = torch.randn(2, 5, 4, 3)
    want = up(x)
    got = up(x.contiguous(memory_format=torch.channels_last))
    assert want.is_contiguous()
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got, want)
    assert torch.equal(want, 0.5 * x.repeat_interleave(stride, 2).repeat_interleave(stride, 3))
