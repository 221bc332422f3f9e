"""Winograd F(m, 3) convolutions (darkconv.nn.winograd): the exact transform matrices, both
implementations of the transforms against the direct convolution, the whole fixture nets against
Darknet's outputs, and the compiled path."""

from __future__ import annotations

import shutil

import pytest
import torch
from fixture_util import FIXTURES, rel_err
from test_fuse import NETS, _loaded, _worst

from darkconv.nn.builder import build
from darkconv.nn.fuse import FusedConvolutional, fuse_model
from darkconv.nn.modules import Convolutional
from darkconv.nn.winograd import (
    POINTS,
    WinogradConvolutional,
    choose_tile,
    transform_matrices,
    winograd_model,
)
from darkconv.parse.graph import parse_network

TILES = sorted(POINTS)


@pytest.mark.parametrize("m", TILES)
def test_transforms_compute_correlation(m: int) -> None:
    # y_i = sum_k d_{i+k} g_k, in 1-D and (by separability) 2-D, to float64 rounding
    at, g, bt = transform_matrices(m)
    assert (at.shape, g.shape, bt.shape) == ((m, m + 2), (m + 2, 3), (m + 2, m + 2))
    gen = torch.Generator().manual_seed(m)
    d = torch.randn(m + 2, m + 2, dtype=torch.float64, generator=gen)
    k = torch.randn(3, 3, dtype=torch.float64, generator=gen)
    y1 = at @ ((g @ k[0]) * (bt @ d[0]))
    ref1 = torch.stack([(d[0, i : i + 3] * k[0]).sum() for i in range(m)])
    torch.testing.assert_close(y1, ref1, rtol=0, atol=1e-12)
    y2 = at @ ((g @ k @ g.T) * (bt @ d @ bt.T)) @ at.T
    ref2 = torch.nn.functional.conv2d(d[None, None], k[None, None])[0, 0]
    torch.testing.assert_close(y2, ref2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("m", TILES)
def test_data_transform_has_integer_coefficients(m: int) -> None:
    _, _, bt = transform_matrices(m)
    assert torch.equal(bt, bt.round())


def test_no_points_for_other_tiles() -> None:
    with pytest.raises(ValueError, match="F\\(3, 3\\)"):
        transform_matrices(3)
    with pytest.raises(ValueError, match="tile must be"):
        winograd_model(torch.nn.Sequential(), tile=3)


@pytest.mark.parametrize(
    ("channels", "height", "batch", "tile"),
    [
        (32, 112, 1, None),  # too few input channels
        (64, 56, 1, 4),  # 14*14 tiles of 4x4
        (128, 28, 1, 4),  # 7*7 = 49 tiles
        (256, 14, 1, 2),  # 4*4 = 16 tiles of 4x4 are too few; 7*7 of 2x2 are enough
        (512, 7, 1, None),  # 4*4 tiles of 2x2 are too few
        (512, 7, 4, 2),  # ... but 4 images give 64
        (512, 13, 1, 2),  # 7*7 tiles of 2x2 (13 rounds up)
    ],
)
def test_choose_tile(channels: int, height: int, batch: int, tile: int | None) -> None:
    assert choose_tile(channels, height, height, batch) == tile


@pytest.mark.parametrize(
    ("channels", "height", "filters", "batch", "tile"),
    [
        (512, 13, 512, 1, 2),  # 49 tiles, 16 * 512 * 512 = 4 Mi transformed weights: kept
        (512, 13, 1024, 1, None),  # 8 Mi transformed weights read for 49 tiles: direct
        (512, 13, 1024, 2, 2),  # 98 tiles share them
        (256, 14, 512, 1, 2),  # darknet53 at 224: 2 Mi
        (512, 19, 1024, 1, 2),  # 100 tiles (yolov3 at 608)
        (256, 26, 512, 1, 4),  # F(4x4) keeps its 49 tiles whatever the size
    ],
)
def test_choose_tile_weighs_the_transformed_weights(
    channels: int, height: int, filters: int, batch: int, tile: int | None
) -> None:
    assert choose_tile(channels, height, height, batch, filters) == tile


def _fused_layer(
    c: int, h: int, w: int, filters: int, activation: str, math: str = "double"
) -> FusedConvolutional:
    gen = torch.Generator().manual_seed(c * 1000 + h * 10 + w)
    conv = Convolutional((c, h, w), filters, 3, 1, 1, 1, True, activation, math=math).eval()
    with torch.no_grad():
        for p in conv.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        conv.bn.running_mean.copy_(torch.randn(filters, generator=gen) * 0.1)
        conv.bn.running_var.copy_(torch.rand(filters, generator=gen) + 0.5)
    return FusedConvolutional(conv, prepack=False)


LAYERS = [
    # (c, h, w, filters, activation, batch): sizes that are and are not multiples of the tile
    (8, 13, 13, 16, "leaky", 2),
    (64, 15, 9, 32, "linear", 1),
    (16, 28, 28, 8, "logistic", 1),
    (32, 8, 8, 24, "elu", 3),
    (3, 1, 5, 4, "relu", 1),
]


@pytest.mark.parametrize("m", TILES)
@pytest.mark.parametrize(("c", "h", "w", "filters", "activation", "batch"), LAYERS)
@pytest.mark.parametrize("compiling", [False, True], ids=["eager", "compiled-form"])
def test_layer_equals_direct_convolution(
    c: int, h: int, w: int, filters: int, activation: str, batch: int, m: int, compiling: bool
) -> None:
    fused = _fused_layer(c, h, w, filters, activation)
    x = torch.randn(batch, c, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = fused.double()(x.double())
        fused.float()
        layer = WinogradConvolutional(fused, m)
        u = layer._weight(torch.float32)
        y = layer._winograd(x, u, compiling)
        assert y.shape == ref.shape
        err = ((y.double() - ref).abs().max() / ref.abs().max()).item()
        if not compiling:  # the public forward takes the eager path: the same tensor
            assert torch.equal(layer(x), y)
    # float32 with the 4x4 tile's larger coefficients: a few 1e-6 (direct conv: ~1e-7..1e-6)
    assert err <= 2e-5


def _banded_case(
    activation: str, batch: int, seed: int, scale: float, monkeypatch: pytest.MonkeyPatch
) -> tuple[FusedConvolutional, torch.Tensor, torch.Tensor]:
    """A float-math fused 8 -> 16 layer on 11x7 maps (a crop for either tile), ``batch`` random
    images and the float64 direct reference; one tile row per activation band."""
    import darkconv.nn.inplace as inplace

    monkeypatch.setattr(inplace, "MISH_CHUNK", 1)
    fused = _fused_layer(8, 11, 7, 16, activation, math="float")
    x = torch.randn(batch, 8, 11, 7, generator=torch.Generator().manual_seed(seed)) * scale
    with torch.no_grad():
        ref = fused.double()(x.double())
    return fused.float(), x, ref


@pytest.mark.parametrize("m", TILES)
@pytest.mark.parametrize(
    "activation", ["mish", "leaky", "relu", "linear", "swish", "normalize_channels"]
)
def test_banded_bias_and_activation(
    activation: str, m: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bias and activation run a band of tile rows at a time (here one row per band, over two
    images, with a crop); the across-channels ``normalize_channels`` runs on the whole map."""
    fused, x, ref = _banded_case(activation, 2, 2, 4.0, monkeypatch)
    with torch.no_grad():
        y = WinogradConvolutional(fused, m)(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert rel_err(y.numpy(), ref.numpy()) <= 2e-5


@pytest.mark.parametrize("activation", ["mish", "leaky", "normalize_channels"])
def test_traced_layer_takes_any_batch(activation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under graph capture (here ``torch.jit.trace``, as ``darkconv export model.pt`` does) the
    layer takes the plain-ops path: the eager band loop would bake the example's batch into the
    graph, and a traced model then computed garbage for another batch.  ``normalize_channels``
    works across the channels, which the plain path must hand it on dim 1."""
    fused, x, ref = _banded_case(activation, 3, 3, 1.0, monkeypatch)
    with torch.no_grad():
        traced = torch.jit.trace(WinogradConvolutional(fused, 2), x[:2], check_trace=False)
        got = traced(x)
    assert rel_err(got.numpy(), ref.numpy()) <= 2e-5


def test_autograd_gets_the_direct_convolution() -> None:
    layer = WinogradConvolutional(_fused_layer(16, 8, 8, 8, "leaky"), 2)
    x = torch.randn(1, 16, 8, 8)
    y = layer(x)  # grad enabled, weights require grad: differentiable direct path
    y.sum().backward()
    assert layer.conv.weight.grad is not None
    with torch.no_grad():
        torch.testing.assert_close(layer(x), y.detach(), rtol=1e-4, atol=1e-5)


def test_layer_follows_weight_and_dtype_changes() -> None:
    fused = _fused_layer(16, 12, 12, 8, "leaky")
    layer = WinogradConvolutional(fused, 4)
    x = torch.randn(1, 16, 12, 12)
    with torch.no_grad():
        layer(x)
        layer.conv.weight.mul_(2)  # in place: the cached U must be recomputed
        direct = FusedConvolutional.forward(layer, x)
        torch.testing.assert_close(layer(x), direct, rtol=1e-4, atol=1e-4)
        layer.double()  # float64 runs Winograd in float64
        xd = x.double()
        torch.testing.assert_close(layer(xd), FusedConvolutional.forward(layer, xd))
        layer.bfloat16()  # other dtypes: the direct convolution
        xb = x.bfloat16()
        assert torch.equal(layer(xb), FusedConvolutional.forward(layer, xb))


def test_rejects_ineligible_layer() -> None:
    conv = Convolutional((8, 10, 10), 8, 3, 2, 1, 1, True, "leaky").eval()
    with pytest.raises(ValueError, match="stride 1"):
        WinogradConvolutional(FusedConvolutional(conv), 2)


CFG = """[net]
width=28
height=28
channels=3

[convolutional]
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=leaky

[convolutional]
filters=32
size=3
stride=2
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=64
size=1
stride=1
pad=1
activation=leaky

[convolutional]
filters=64
groups=2
size=3
stride=1
pad=1
activation=linear
"""


def test_model_swaps_eligible_layers_only() -> None:
    torch.manual_seed(0)
    model = build(parse_network(CFG, path="t.cfg")).eval()
    x = torch.rand(2, 3, 28, 28)
    with torch.no_grad():
        ref = model(x)
        keys = list(fuse_model(model).state_dict())
        model.fuse(winograd=True)  # fusing again is a no-op; the Winograd swap by choose_tile
        kinds = [type(layer).__name__ for layer in model.layers]
        # 3 input channels -> direct; 64 channels at 28x28 -> F(4, 3); stride 2, 1x1 and
        # grouped layers -> direct
        assert (
            kinds[:5]
            == ["FusedConvolutional", "WinogradConvolutional"] + ["FusedConvolutional"] * 3
        )
        assert model.layers[1].tile == 4
        assert list(model.state_dict()) == keys  # same parameters, same keys
        torch.testing.assert_close(model(x), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("name", NETS)
def test_winograd_net_matches_darknet(name: str, tile: int) -> None:
    # every eligible layer forced to the tile (the thinned nets are too narrow for choose_tile)
    folder = FIXTURES / "nets" / name
    model = winograd_model(fuse_model(_loaded(folder, name)), tile=tile)
    assert sum(isinstance(m, WinogradConvolutional) for m in model.modules()) >= 9
    # worst layer measured: F(2,3) 5e-6..6e-5, F(4,3) 1e-5..2.7e-4 (yolov3); fused direct 6e-5
    assert _worst(model, folder) <= 5e-4


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile's CPU kernels need g++")
def test_compiled_layer_equals_eager() -> None:
    # the path `bench --compile --winograd` times: inductor, frozen weights (U folded)
    import torch._inductor.config as inductor_config

    from darkconv.bench.models import compile_options

    fused = _fused_layer(64, 12, 12, 32, "leaky")
    layer = WinogradConvolutional(fused, 4).eval()
    x = torch.randn(1, 64, 12, 12).contiguous(memory_format=torch.channels_last)
    torch._dynamo.reset()
    compiled = torch.compile(layer)
    with torch.inference_mode(), inductor_config.patch(compile_options("cpu")):
        y = compiled(x)
        ref = FusedConvolutional.forward(layer, x)
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)


def test_deepcopy_and_pickle_drop_the_caches() -> None:
    import copy
    import pickle

    layer = WinogradConvolutional(_fused_layer(64, 9, 9, 16, "leaky"), 2)
    x = torch.randn(1, 64, 9, 9)
    with torch.no_grad():
        y = layer(x)
        assert layer._u is not None
        for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
            assert clone._u is None and clone._kron == {}
            assert torch.equal(clone(x), y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_layer_on_cuda_equals_direct_convolution() -> None:
    layer = WinogradConvolutional(_fused_layer(64, 14, 14, 32, "leaky"), 2).cuda()
    x = torch.randn(2, 64, 14, 14, device="cuda")
    with torch.no_grad():
        ref = FusedConvolutional.forward(layer.double(), x.double())
        y = layer.float()(x)
    assert ((y.double() - ref).abs().max() / ref.abs().max()).item() <= 2e-5
