"""The fused-inference activations (darkconv.nn.inplace): mish against float64 and against
AlexeyAB's own float32 formula, on contiguous, channels_last and strided tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from darkconv.nn.inplace import act_inplace, mish_inplace


def test_fused_mish_matches_formula_and_flushes_like_darknet() -> None:
    """The fused in-place mish equals ``y * tanh(softplus(y))`` (float64) to within the error
    of AlexeyAB's own float32 ``mish_activate`` (``x * tanhf(softplus)``, softplus ``x > 20 ? x
    : x < -20 ? expf(x) : logf(expf(x) + 1)``) on the same points, relative to ``|y|``; it is
    exactly 0 where ``1 + e^y`` rounds to 1 (below -16.6), exactly ``y`` from 20 up, and it
    never emits a denormal (Darknet's flush-to-zero ``-Ofast`` build does not either)."""
    y = torch.cat([torch.linspace(-120, 60, 400_001), torch.randn(100_000) * 10])
    ref = y.double() * torch.tanh(torch.nn.functional.softplus(y.double()))
    out = mish_inplace(y.clone(), chunk=4096)
    tiny = (out != 0) & (out.abs() < torch.finfo(torch.float32).tiny)
    assert not tiny.any()
    assert (out[y < -17] == 0).all()
    assert torch.equal(out[y >= 20], y[y >= 20])

    x = y.numpy()
    with np.errstate(over="ignore"):
        e = np.exp(x)
        softplus = np.where(x > 20, x, np.where(x < -20, e, np.log(e + np.float32(1))))
    darknet = torch.from_numpy(x * np.tanh(softplus.astype(np.float32)))
    assert darknet.dtype == torch.float32

    def err(v: torch.Tensor) -> float:
        return float(((v.double() - ref).abs() / y.double().abs().clamp(min=1e-30)).max())

    assert err(out) <= err(darknet), (err(out), err(darknet))
    assert err(out) < 2.4e-7  # 4 units of float32 rounding (2^-24) of |y|


@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_mish_equals_mish(channels_last: bool) -> None:
    x = torch.randn(2, 5, 70, 90, generator=torch.Generator().manual_seed(0)) * 8
    x[0, 0, 0, :8] = torch.tensor([-1e30, -100.0, -20.0, 0.0, 19.9, 20.0, 21.0, 1e30])
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    want = torch.nn.functional.mish(x.double())
    got = act_inplace(x.clone(), "mish")
    # AlexeyAB's float32 mish_activate errs by up to 1.5e-7 |y| itself (the test above)
    assert ((got.double() - want).abs() <= 1.5e-7 * x.double().abs().clamp(min=1)).all()
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_fast_mish_on_a_strided_view() -> None:
    base = torch.randn(1, 6, 9, 9, generator=torch.Generator().manual_seed(1)) * 8
    view = base.contiguous(memory_format=torch.channels_last)[:, :, :7, :5]  # Winograd's crop
    before = view.double()
    want = torch.nn.functional.mish(before)
    got = act_inplace(view, "mish")
    err = (view.double() - want).abs()
    assert got is view and (err <= 1.5e-7 * before.abs().clamp(min=1)).all()


@pytest.mark.parametrize("name", ["mish", "leaky", "relu", "linear", "logistic", "elu"])
def test_act_into_reads_a_strided_view(name: str) -> None:
    """``act_into`` writes the activation of a strided view (Winograd's tile rows) into another
    buffer and leaves the source alone; the formula is the table's."""
    from darkconv.nn.activations import activate
    from darkconv.nn.inplace import act_into

    base = torch.randn(3, 4, 6, 5, generator=torch.Generator().manual_seed(2)) * 8
    src = base.permute(0, 2, 1, 3)  # not contiguous
    keep = src.clone()
    out = torch.empty(src.shape)
    assert act_into(src, out, name, "float") is out
    assert torch.equal(src, keep)
    want = activate(keep.double(), name, "float")
    err = (out.double() - want).abs()
    assert (err <= 1.5e-7 * keep.double().abs().clamp(min=1)).all()
