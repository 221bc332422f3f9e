"""The cpu/gpu training semantics, batch norm in train(), DarknetSGD, and what is refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from train_util import TRAIN_FIXTURES, WEIGHTS_TOL, rel_err

import darkconv
from darkconv.errors import DarkconvError, UnsupportedError
from darkconv.nn.modules import DarknetBatchNorm
from darkconv.nn.train_mode import MECHANISMS, SEMANTICS, semantics_named
from darkconv.parse import parse_network
from darkconv.train import DarknetSGD, darknet_loss, make_optimizer, train_step
from darkconv.weights import read_weights

RESIDUAL = TRAIN_FIXTURES / "residual"
REGION = TRAIN_FIXTURES / "region_loss"


def test_gpu_differs_from_cpu_only_in_the_documented_mechanisms() -> None:
    cpu, gpu = SEMANTICS["cpu"], SEMANTICS["gpu"]
    differ = {
        f.name for f in dataclasses.fields(cpu) if getattr(cpu, f.name) != getattr(gpu, f.name)
    }
    assert differ - {"name"} == set(MECHANISMS.values())
    mixed = semantics_named("cpu+" + "+".join(MECHANISMS))
    assert dataclasses.replace(mixed, name="gpu") == gpu
    with pytest.raises(ValueError, match="semantics must be"):
        semantics_named("cpu+adam")


def _bn_input() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 5, generator=gen, dtype=torch.float64) * 2 + 1
    x[:, 1] = 0.5 + 1e-3 * x[:, 1]  # a channel with a tiny variance: the epsilons matter
    return x


def test_cpu_batch_norm_is_darknets_forward_and_backward() -> None:
    x64 = _bn_input()
    bn = DarknetBatchNorm(4)
    bn.semantics = SEMANTICS["cpu"]
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.5, -1.0, 2.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    bn.train()
    x = x64.float().requires_grad_()
    y = bn(x)
    d = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y.backward(-d.float())  # Darknet's delta is the negative gradient
    # forward_batchnorm_layer / backward_batchnorm_layer written out in float64 (blas.c).
    n = x64.shape[0] * x64.shape[2] * x64.shape[3]
    mean = x64.mean(dim=(0, 2, 3), keepdim=True)
    var = ((x64 - mean) ** 2).sum(dim=(0, 2, 3), keepdim=True) / (n - 1)
    x_norm = (x64 - mean) / (var.sqrt() + 1e-6)
    scale = bn.weight.detach().double().reshape(1, -1, 1, 1)
    ref_y = x_norm * scale + bn.bias.detach().double().reshape(1, -1, 1, 1)
    scale_updates = (d * x_norm).sum(dim=(0, 2, 3))
    bias_updates = d.sum(dim=(0, 2, 3))
    ds = d * scale
    mean_delta = ds.sum(dim=(0, 2, 3), keepdim=True) * (-1 / (var + 1e-5).sqrt())
    var_delta = (ds * (x64 - mean)).sum(dim=(0, 2, 3), keepdim=True) * (-0.5 * (var + 1e-5) ** -1.5)
    ref_dx = ds / (var + 1e-5).sqrt() + var_delta * 2 * (x64 - mean) / n + mean_delta / n
    assert rel_err(y.detach().numpy(), ref_y.numpy()) < 1e-5
    assert rel_err(-x.grad.numpy(), ref_dx.numpy()) < 1e-4
    assert rel_err(-bn.weight.grad.numpy(), scale_updates.numpy()) < 1e-4
    assert rel_err(-bn.bias.grad.numpy(), bias_updates.numpy()) < 1e-5
    assert rel_err(bn.running_mean.numpy(), 0.01 * mean.flatten().numpy()) < 1e-6
    assert rel_err(bn.running_var.numpy(), 0.99 + 0.01 * var.flatten().numpy()) < 1e-6


def test_gpu_batch_norm_is_cudnns() -> None:
    x64 = _bn_input()
    bn = DarknetBatchNorm(4).train()  # default semantics: gpu
    x = x64.float().requires_grad_()
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (bn(x) * d.float()).sum().backward()
    mean = x64.mean(dim=(0, 2, 3), keepdim=True)
    biased = ((x64 - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    n = x64.numel() // 4
    xr = x64.clone().requires_grad_()
    ref = (xr - xr.mean(dim=(0, 2, 3), keepdim=True)) / (
        xr.var(dim=(0, 2, 3), correction=0, keepdim=True) + 1e-5
    ).sqrt()
    (ref * d).sum().backward()
    assert rel_err(x.grad.numpy(), xr.grad.numpy()) < 1e-3  # the exact gradient (cuDNN backward)
    unbiased = biased * n / (n - 1)
    assert rel_err(bn.running_var.numpy(), 0.99 + 0.01 * unbiased.flatten().numpy()) < 1e-6


def test_eval_is_unchanged_by_training_mode() -> None:
    model = darkconv.load(RESIDUAL / "case.cfg", RESIDUAL / "init.weights")
    x = torch.from_numpy(np.load(RESIDUAL / "X.npy"))
    with torch.no_grad():
        before = model(x)
    model.set_semantics("cpu").train()
    assert rel_err(model(x).detach().numpy(), before.numpy()) > 1e-3  # batch statistics
    model.load_state_dict(
        darkconv.load(RESIDUAL / "case.cfg", RESIDUAL / "init.weights").state_dict()
    )
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), before)


def test_one_by_one_conv_overwrite_is_what_cpu_darknet_does() -> None:
    """residual: with the GPU's accumulating 1x1 backward the shortcut gradient reaches layer 0
    and the weights after one call move far outside the tolerance."""
    for semantics, agrees in (("cpu", True), ("cpu+conv1x1", False)):
        model = darkconv.load(RESIDUAL / "case.cfg", RESIDUAL / "init.weights")
        opt, sched = make_optimizer(model)
        train_step(
            model,
            np.load(RESIDUAL / "X.npy"),
            np.load(RESIDUAL / "Y.npy"),
            opt,
            sched,
            semantics=semantics,
        )
        _, ref = read_weights(RESIDUAL / "after_1.weights", model.network)
        worst = max(rel_err(model.state_dict()[k].numpy(), v.numpy()) for k, v in ref.items())
        assert (worst <= WEIGHTS_TOL) == agrees, (semantics, worst)


@pytest.mark.parametrize(("semantics", "trains"), [("cpu", False), ("gpu", True)])
def test_region_trains_only_with_the_gpu_backward(semantics: str, trains: bool) -> None:
    model = darkconv.load(REGION / "case.cfg", REGION / "init.weights").set_semantics(semantics)
    model.train()
    x, y = torch.from_numpy(np.load(REGION / "X.npy")), torch.from_numpy(np.load(REGION / "Y.npy"))
    res = darknet_loss(model, model(x, all_outputs=True), y, seen=12798)
    if res.loss.requires_grad:
        res.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None and p.grad.abs().max() > 0]
    assert bool(grads) == trains
    assert res.cost > 0


def test_darknet_sgd_equals_torch_sgd_with_decay_on_weights() -> None:
    gen = torch.Generator().manual_seed(3)
    w0, b0 = torch.randn(5, 3, generator=gen), torch.randn(5, generator=gen)
    ours = [torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())]
    ref = [torch.nn.Parameter(w0.clone()), torch.nn.Parameter(b0.clone())]
    opt = DarknetSGD(
        [{"params": ours[:1], "decay": 5e-4}, {"params": ours[1:], "decay": 0.0}],
        lr=0.1,
        momentum=0.9,
        batch=8,
    )
    sgd = torch.optim.SGD(
        [{"params": ref[:1], "weight_decay": 5e-4}, {"params": ref[1:]}], lr=0.1, momentum=0.9
    )
    for _ in range(4):
        grads = [torch.randn(p.shape, generator=gen) for p in ours]
        for p, q, g in zip(ours, ref, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        sgd.step()
    for p, q in zip(ours, ref, strict=True):
        assert rel_err(p.detach().numpy(), q.detach().numpy()) < 1e-5
    buf = sgd.state[ref[0]]["momentum_buffer"]
    assert rel_err((-opt.state[ours[0]]["updates"] / (0.9 * 8)).numpy(), buf.numpy()) < 1e-5


YOLO_AB = """[net]
batch=1
width=32
height=32
channels=3
[convolutional]
filters=8
size=1
activation=linear
[yolo]
mask=0
anchors=10,14
classes=3
num=1
iou_loss=ciou
"""


def test_alexeyab_losses_are_refused_by_name() -> None:
    network = parse_network(YOLO_AB, "ab.cfg")
    object.__setattr__(network, "dialect", "alexeyab")  # what the alexeyab parser sets
    model = darkconv.build(network).train()
    outs = model(torch.rand(1, 3, 32, 32), all_outputs=True)
    with pytest.raises(UnsupportedError, match="iou_loss=ciou"):
        darknet_loss(model, outs, torch.zeros(1, 450), seen=1)


def test_bad_batch_is_a_clear_error() -> None:
    model = darkconv.load(RESIDUAL / "case.cfg", RESIDUAL / "init.weights")
    opt, sched = make_optimizer(model)
    with pytest.raises(DarkconvError, match="multiple of batch/subdivisions"):
        train_step(
            model, np.zeros((3, 3, 32, 32), np.float32), np.zeros((3, 5), np.float32), opt, sched
        )


def test_alexeyab_batch_norm_trains_with_its_own_epsilon() -> None:
    """AlexeyAB's normalize_cpu is sqrt(var + 1e-5): its CPU training forward uses it with the
    batch statistics (its losses are refused above; softmax trains)."""
    case = TRAIN_FIXTURES / "classifier_conv_bn"
    x, y = np.load(case / "X.npy"), np.load(case / "Y.npy")
    model = darkconv.load(case / "case.cfg", case / "init.weights", dialect="alexeyab")
    bn = model.layers[0].bn
    assert bn.mode == "alexeyab"
    model.set_semantics("cpu").train()
    conv = model.layers[0].convolve(torch.from_numpy(x), model.layers[0].conv.weight).detach()
    var, mean = torch.var_mean(conv.double(), dim=(0, 2, 3), correction=1, keepdim=True)
    want = (conv - mean) / torch.sqrt(var + 1e-5) * bn.weight.detach().double().reshape(1, -1, 1, 1)
    want = want + bn.bias.detach().double().reshape(1, -1, 1, 1)
    with torch.no_grad():
        got = bn(conv)
    assert rel_err(got.numpy(), want.numpy()) < 1e-5
    opt, sched = make_optimizer(model)
    res = train_step(model, x, y, opt, sched)
    assert res.updated and np.isfinite(res.loss)


@pytest.mark.parametrize(
    ("kind", "conv1x1", "dropped"),
    [("convolutional", True, True), ("convolutional", False, False), ("reorg", False, True)],
)
def test_delta_writers_drop_later_readers(kind: str, conv1x1: bool, dropped: bool) -> None:
    """Layer 2 writes layer 1's delta; layer 3 (a shortcut reading layer 1) loses its gradient."""
    from darkconv.nn.train_mode import overwritten_sources

    types = ["convolutional", "convolutional", kind, "shortcut"]
    sources = [(-1,), (0,), (1,), (2, 1)]
    plan = overwritten_sources(types, sources, [3, 3, 1, None], conv1x1)
    assert plan == ({3: frozenset({1})} if dropped else {})


def test_shortcut_scales_the_whole_previous_delta_by_alpha() -> None:
    """backward_shortcut_layer: prev delta += alpha * delta everywhere (the forward applies alpha
    only where the inputs overlap); from delta += beta * delta on the overlap."""
    from darkconv.nn.spatial import Shortcut

    layer = Shortcut((4, 4, 4), (2, 2, 2), "linear", alpha=0.5, beta=2.0).train()
    x = torch.rand(1, 4, 4, 4, requires_grad=True)
    src = torch.rand(1, 2, 2, 2, requires_grad=True)
    y = layer(x, src)
    with torch.no_grad():
        assert torch.equal(y, layer.eval()(x, src))  # the forward value is unchanged
    y.backward(torch.ones_like(y))
    assert torch.equal(x.grad, torch.full_like(x, 0.5))
    assert torch.equal(src.grad, torch.full_like(src, 2.0))
