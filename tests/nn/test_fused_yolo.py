"""FusedYolo (float32 logistic) against Yolo (Darknet's double logistic, AlexeyAB's float one
with ``scale_x_y``)."""

from __future__ import annotations

import pytest
import torch

from darkconv.nn.fuse import FusedYolo, fuse_model
from darkconv.nn.heads import Yolo


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("scale_x_y", "math"), [(1.0, "double"), (1.2, "float")])
def test_fused_yolo_matches_yolo(scale_x_y: float, math: str, channels_last: bool) -> None:
    yolo = Yolo((2 * 7, 5, 6), classes=2, mask=(0, 1), scale_x_y=scale_x_y, math=math)
    fused = fuse_model(torch.nn.Sequential(yolo))[0]
    assert type(fused) is FusedYolo and fused.act is not yolo.act
    x = torch.randn(3, 14, 5, 6, generator=torch.Generator().manual_seed(0)) * 4
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        want, got = yolo(x), fused(x)
    assert torch.allclose(got, want, rtol=0, atol=3e-7)
    assert torch.equal(got[:, 2:4], x[:, 2:4]) and torch.equal(got[:, 9:11], x[:, 9:11])
    flat = fused(x.contiguous().flatten(1))  # a flat Darknet buffer reshapes
    assert torch.allclose(flat, got, rtol=0, atol=3e-7)
