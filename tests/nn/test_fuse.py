"""Conv+BN fusion (darkconv.nn.fuse): fused models agree with Darknet's recorded outputs (nets/ at
5e-4, layers/ at 1e-4) and with the unfused model on random inputs, for both BN modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixture_util import FIXTURES, load_layout, load_manifest, rel_err
from torch import nn

from darkconv.nn.builder import build
from darkconv.nn.fuse import FusedConnected, FusedConvolutional, fold_bn, fuse_model
from darkconv.nn.modules import Connected, Convolutional, DarknetBatchNorm, Deconvolutional
from darkconv.parse.graph import load_network, parse_network

NETS = sorted(p.name for p in (FIXTURES / "nets").iterdir() if p.is_dir())
# layers/ cases with a batch norm to fold (or a conv/connected the fuser rewrites)
LAYER_CASES = [
    "conv_bn", "conv_groups", "conv_basic", "conv_stride2", "conv_sizes", "conv_1x1_stride2_quirk",
    "conv_xnor", "bn_tiny_variance", "connected", "connected_inputs", "deconv", "rnn", "gru",
    "lstm", "crnn",
]  # fmt: skip


def _loaded(folder: Path, stem: str) -> nn.Module:
    """Build ``folder/stem.cfg`` and load ``stem.weights`` (darkconv's reader, else the layout)."""
    network = load_network(folder / f"{stem}.cfg")
    model = build(network)
    weights = folder / f"{stem}.weights"
    try:
        from darkconv.weights.io import read_weights
    except ImportError:
        layout = load_manifest(folder)["weights_layout"]
        load_layout(list(model.layers), weights, layout)
    else:
        _, state = read_weights(weights, network)
        model.load_state_dict(state, strict=False)
    return model.eval()


def _worst(model: nn.Module, folder: Path) -> float:
    ref = np.load(folder / "outputs.npz")
    outs = model.darknet_outputs(np.load(folder / "input.npy"))
    return max(rel_err(outs[k], ref[k]) for k in ref.files)


@pytest.mark.parametrize("name", NETS)
def test_fused_net_matches_darknet(name: str) -> None:
    folder = FIXTURES / "nets" / name
    model = fuse_model(_loaded(folder, name))
    assert any(isinstance(m, FusedConvolutional) for m in model.modules())
    assert not any(
        isinstance(m, Convolutional) and m.bn is not None and not m.xnor for m in model.modules()
    )
    assert _worst(model, folder) <= 5e-4


@pytest.mark.parametrize("case", LAYER_CASES)
def test_fused_layer_case_matches_darknet(case: str) -> None:
    folder = FIXTURES / "layers" / case
    model = _loaded(folder, "case")
    before = _worst(model, folder)
    fused = fuse_model(model)
    assert _worst(fused, folder) <= max(1e-4, 2 * before)


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, DarknetBatchNorm):
                n = m.weight.shape[0]
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.01)
                if m.bias is not None:
                    m.bias.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)


MIXED = """
[net]
width=12
height=12
channels=4
[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
groups=2
activation=leaky
[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
groups=8
activation=relu
[convolutional]
filters=6
size=1
activation=linear
[shortcut]
from=-2
activation=linear
[deconvolutional]
batch_normalize=1
filters=4
size=2
stride=2
activation=leaky
[connected]
batch_normalize=1
output=10
activation=logistic
[connected]
output=5
activation=linear
"""


@pytest.mark.parametrize("mode", ["cpu", "gpu"])
def test_fused_equals_unfused(mode: str) -> None:
    torch.manual_seed(0)
    network = parse_network(MIXED)
    model = build(network, bn_mode=mode)
    _randomize_bn(model)
    twin = build(network, bn_mode=mode)
    twin.load_state_dict(model.state_dict())
    fused = fuse_model(twin)
    kinds = [type(layer) for layer in fused.layers]
    assert kinds[:3] == [FusedConvolutional] * 3
    assert kinds[4] is Deconvolutional and fused.layers[4].bn is None
    assert kinds[5:] == [FusedConnected, FusedConnected]
    assert fused.layers[1].conv.groups == 8
    x = torch.rand(3, 4, 12, 12)
    with torch.no_grad():
        want, got = model(x, all_outputs=True), fused(x, all_outputs=True)
    for a, b in zip(want, got, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(a.abs().max()))
    # channels_last gives the same numbers
    cl = fused.to(memory_format=torch.channels_last)
    with torch.no_grad():
        y = cl(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(y, want[-1], rtol=1e-4, atol=1e-5)


def test_fold_bn_formula_per_mode() -> None:
    bn = DarknetBatchNorm(2)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.1, -0.2]))
        bn.running_mean.copy_(torch.tensor([1.0, -1.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1e-6]))
    w = torch.ones(2, 1, 1, 1)
    for mode, denom in (
        ("cpu", [2.0 + 1e-6, 1e-3 + 1e-6]),
        ("gpu", [(4 + 1e-5) ** 0.5, (1e-6 + 1e-5) ** 0.5]),
    ):
        fw, fb = fold_bn(w, bn, None, 0, mode)
        d = torch.tensor(denom, dtype=torch.float64)
        scale = torch.tensor([2.0, 0.5], dtype=torch.float64) / d
        assert torch.allclose(fw.flatten().double(), scale, rtol=1e-6)
        expect = (
            torch.tensor([0.1, -0.2], dtype=torch.float64)
            - torch.tensor([1.0, -1.0]).double() * scale
        )
        assert torch.allclose(fb.double(), expect, rtol=1e-6)


def test_fuse_keeps_xnor_and_single_modules() -> None:
    conv = Convolutional((3, 8, 8), 4, 3, 1, 1, batch_normalize=True, activation="leaky", xnor=True)
    assert fuse_model(conv) is conv and conv.bn is not None
    fc = Connected(6, 3, batch_normalize=True, activation="leaky").eval()  # train(): batch stats
    _randomize_bn(fc)
    x = torch.rand(2, 6)
    with torch.no_grad():
        want = fc(x)
        got = fuse_model(fc)(x)
    assert torch.allclose(want, got, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        fuse_model(fc, mode="tpu")


def test_prepacked_path_matches_plain_conv_and_autograd_still_works() -> None:
    torch.manual_seed(1)
    network = parse_network(MIXED)
    model = build(network)
    _randomize_bn(model)
    plain = build(network)
    plain.load_state_dict(model.state_dict())
    fast, slow = fuse_model(model), fuse_model(plain, prepack=False)
    x = torch.rand(2, 4, 12, 12)
    with torch.inference_mode():
        a, b = fast(x), slow(x)
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not slow.layers[0].prepack
    # weights changed after packing: the pack is refreshed
    with torch.no_grad():
        fast.layers[0].conv.weight.mul_(2.0)
        slow.layers[0].conv.weight.mul_(2.0)
        assert torch.allclose(fast(x), slow(x), rtol=1e-5, atol=1e-6)
    # with autograd on, the plain conv2d path runs and gradients flow
    y = fast(x.requires_grad_(True))
    y.sum().backward()
    assert fast.layers[0].conv.weight.grad is not None
    assert fast.layers[0].__getstate__()["_packed"] is None
