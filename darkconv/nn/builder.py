"""Network (the parsed graph) -> :class:`DarknetModel`, an ``nn.Module`` equal to Darknet layer by
layer.

One table, :data:`FACTORIES`, maps each ``layer.type`` to a function from the graph layer to its
module.  Every layer lives at ``model.layers[i]`` (parameterless layers included), so the state
dict keys are ``layers.{i}.{record.key}`` exactly as in ``docs/ARCHITECTURE.md``, plus the
``header`` buffer (int64[4]: major, minor, revision, seen; default 0, 2, 0, 0) that carries
Darknet's ``seen`` counter through a round trip.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from darkconv.errors import (
    DarkconvError,
    GraphError,
    ResourceError,
    UnsupportedError,
    is_out_of_memory,
)
from darkconv.nn import heads, modules, recurrent, spatial
from darkconv.parse.budget import check_fits, human_bytes, human_count, parameter_cost
from darkconv.parse.graph import Layer, Network, load_network

__all__ = ["FACTORIES", "HEAD_TYPES", "DarknetModel", "build", "load", "pick_device"]

HEAD_TYPES = ("yolo", "region", "detection")
Shape3 = tuple[int, int, int]


@dataclass(frozen=True)
class Ctx:
    network: Network
    bn_mode: str

    def shape_of(self, index: int) -> Shape3:
        """The output dims of source ``index`` (-1: the network input)."""
        return self.network.input if index < 0 else self.network.layers[index].output


def _tree_groups(ctx: Ctx, tree: str) -> list[int]:
    # Darknet opens tree= relative to the working directory; fall back to the cfg's folder.
    candidates = [Path(tree)]
    if ctx.network.path and not os.path.isabs(tree):
        candidates.append(Path(ctx.network.path).parent / tree)
    for path in candidates:
        if path.is_file():
            return heads.read_tree_groups(str(path))
    raise GraphError(
        f"softmax tree file {tree!r} not found (looked in the working directory and next to the cfg)"
    )


def _b(v: Any) -> bool:
    return bool(v)


def _conv(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    return modules.Convolutional(
        la.input, o["filters"], o["size"], o["stride"], o["padding"], o["groups"],
        _b(o["batch_normalize"]), o["activation"], xnor=_b(o["xnor"]), bn_mode=ctx.bn_mode,
    )  # fmt: skip


def _deconv(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    return modules.Deconvolutional(
        la.input, o["filters"], o["size"], o["stride"], o["padding"],
        _b(o["batch_normalize"]), o["activation"], bn_mode=ctx.bn_mode,
    )  # fmt: skip


def _softmax(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    tree, error = None, None
    if o.get("tree"):
        try:
            tree = _tree_groups(ctx, o["tree"])
        except GraphError as exc:  # the model still builds (shapes, weights); forward raises
            error = GraphError(f"layer {la.index}: {exc.message}", la.span)
    return heads.Softmax(la.inputs, o["groups"], o["temperature"], tree, error)


def _region(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    return heads.Region(
        la.input, o["classes"], o["coords"], o["num"], _b(o["softmax"]), _b(o["background"]),
        o["anchors"] or (), error=UnsupportedError(
            f"layer {la.index}: [region] with tree= (yolo9000) is not supported: Darknet's CPU "
            "forward runs its softmax at temperature 0, so its output is not usable", la.span,
        ) if o.get("tree") else None,
    )  # fmt: skip


def _yolo(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    mask = o["mask"] if o["mask"] is not None else tuple(range(o["num"]))
    return heads.Yolo(la.input, o["classes"], mask, o["anchors"] or ())


def _shortcut(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    prev, src = la.sources
    return spatial.Shortcut(
        ctx.shape_of(prev), ctx.shape_of(src), o["activation"], o["alpha"], o["beta"]
    )


def _rnn(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    return recurrent.RNN(
        la.inputs, o["output"], o["activation"], _b(o["batch_normalize"]), ctx.bn_mode
    )


def _crnn(la: Layer, ctx: Ctx) -> nn.Module:
    o = la.options
    return recurrent.CRNN(
        la.input, o["hidden_filters"], o["output_filters"], o["activation"],
        _b(o["batch_normalize"]), ctx.bn_mode,
    )  # fmt: skip


Factory = Callable[[Layer, Ctx], nn.Module]

FACTORIES: dict[str, Factory] = {
    "convolutional": _conv,
    "deconvolutional": _deconv,
    "local": lambda la, ctx: modules.Local(
        la.input,
        la.options["filters"],
        la.options["size"],
        la.options["stride"],
        la.options["pad"],
        la.options["activation"],
    ),  # fmt: skip
    "connected": lambda la, ctx: modules.Connected(
        la.inputs,
        la.options["output"],
        _b(la.options["batch_normalize"]),
        la.options["activation"],
        ctx.bn_mode,
    ),  # fmt: skip
    "batchnorm": lambda la, ctx: modules.BatchNormLayer(la.input, ctx.bn_mode),
    "activation": lambda la, ctx: modules.Activation(la.options["activation"]),
    "logistic": lambda la, ctx: modules.Activation("logistic"),
    "dropout": lambda la, ctx: modules.Identity(),
    "maxpool": lambda la, ctx: spatial.MaxPool(
        la.input, la.options["size"], la.options["stride"], la.options["padding"]
    ),
    "avgpool": lambda la, ctx: spatial.AvgPool(la.input),
    "route": lambda la, ctx: spatial.Route(la.output),
    "shortcut": _shortcut,
    "upsample": lambda la, ctx: spatial.Upsample(
        la.input, la.options["stride"], la.options["scale"]
    ),
    "reorg": lambda la, ctx: spatial.Reorg(
        la.input,
        la.options["stride"],
        _b(la.options["reverse"]),
        _b(la.options["flatten"]),
        la.options["extra"],
    ),  # fmt: skip
    "crop": lambda la, ctx: spatial.Crop(
        la.input, la.options["crop_height"], la.options["crop_width"], _b(la.options["noadjust"])
    ),
    "l2norm": lambda la, ctx: spatial.L2Norm(la.input),
    "normalization": lambda la, ctx: spatial.Normalization(
        la.input,
        la.options["size"],
        la.options["alpha"],
        la.options["beta"],
        la.options["kappa"],
    ),  # fmt: skip
    "softmax": _softmax,
    "yolo": _yolo,
    "region": _region,
    "detection": lambda la, ctx: heads.Detection(
        la.inputs, la.options["classes"], la.options["side"], _b(la.options["softmax"])
    ),
    "cost": lambda la, ctx: heads.Cost(la.inputs),
    "rnn": _rnn,
    "gru": lambda la, ctx: recurrent.GRU(
        la.inputs,
        la.options["output"],
        _b(la.options["batch_normalize"]),
        _b(la.options["tanh"]),
        ctx.bn_mode,
    ),  # fmt: skip
    "lstm": lambda la, ctx: recurrent.LSTM(
        la.inputs, la.options["output"], _b(la.options["batch_normalize"]), ctx.bn_mode
    ),
    "crnn": _crnn,
}


def fixture_shape(layer: Layer, batch: int) -> tuple[int, ...]:
    """Darknet's flat ``l.output`` shaped as fixtures/README.md stores it: ``(B, c, h, w)`` when
    ``c*h*w == outputs``, else ``(B, outputs)``."""
    c, h, w = layer.output
    return (batch, c, h, w) if c * h * w == layer.outputs else (batch, layer.outputs)


class DarknetModel(nn.Module):
    """A Darknet network as a torch module.

    ``forward(x)`` returns what Darknet treats as the network output: the output layer's tensor
    (the last non-``[cost]`` layer), or, when the network has yolo/region/detection layers, the
    list of their outputs in layer order.  ``forward(x, all_outputs=True)`` returns every layer's
    output (a list indexed like ``layers``).  A plain forward keeps only the outputs a later
    route/shortcut needs.  ``batch_invariant`` (default True) runs the rows of a batch one by one
    so that each equals its batch-1 result bit for bit, as Darknet does; set it to False for
    batched throughput (results then differ in the last bits).
    """

    header: Tensor  # int64 (major, minor, revision, seen), a buffer

    def __init__(self, network: Network, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.register_buffer("header", torch.tensor([0, 2, 0, 0], dtype=torch.int64))
        self.network = network
        self.layers = nn.ModuleList(layers)
        self.types = tuple(la.type for la in network.layers)
        self.sources = tuple(la.sources for la in network.layers)
        self.output_index = network.output_index
        self.heads = tuple(la.index for la in network.layers if la.type in HEAD_TYPES)
        keep = set(self.heads) | {self.output_index}
        for la in network.layers:
            keep.update(s for s in la.sources if s != la.index - 1)
        self.keep = frozenset(s for s in keep if s >= 0)
        self.input_shape: Shape3 = network.input
        self.inputs = network.inputs
        self.out_dims = tuple((la.output, la.outputs) for la in network.layers)
        self.batch_invariant = True

    def __getstate__(self) -> dict[str, Any]:
        # The graph (read-only mappings) does not pickle; the forward does not need it, so a
        # pickled model (torch.save(model)) comes back with ``network = None``.
        state = self.__dict__.copy()
        state["network"] = None
        return state

    @property
    def seen(self) -> int:
        """Darknet's ``seen`` counter from the weights header."""
        return int(self.header[3])

    def _run(self, x: Tensor, keep_all: bool) -> list[Tensor | None]:
        outs: list[Tensor | None] = [None] * len(self.layers)
        prev = x
        for i, layer in enumerate(self.layers):
            src = self.sources[i]
            args = tuple(prev if s == i - 1 else x if s < 0 else outs[s] for s in src)
            prev = layer(*args)
            if keep_all or i in self.keep:
                outs[i] = prev
        return outs

    def _run_batch(self, x: Tensor, keep_all: bool) -> list[Tensor | None]:
        # Darknet computes every image of a batch on its own (forward_convolutional_layer loops
        # over l.batch), and oneDNN/cuDNN pick other algorithms for other batch sizes, so a
        # batched conv can differ from the batch-1 result in the last bits.  With
        # ``batch_invariant`` (default) each row is run alone: row i == the batch-1 result exactly.
        if not self.batch_invariant or x.shape[0] == 1:
            return self._run(x, keep_all)
        rows = [self._run(x[i : i + 1], keep_all) for i in range(x.shape[0])]
        return [
            None if outs[0] is None else torch.cat(outs, dim=0) for outs in zip(*rows, strict=True)
        ]

    def forward(self, x: Tensor, all_outputs: bool = False) -> Any:
        outs = self._run_batch(x, all_outputs)
        if all_outputs:
            return outs
        if self.heads:
            return [outs[i] for i in self.heads]
        return outs[self.output_index]

    @torch.no_grad()
    def darknet_outputs(self, x: Tensor | np.ndarray) -> dict[str, np.ndarray]:
        """Every layer's output as ``layer_NNN`` float32 arrays in Darknet's flat buffer order,
        shaped as the fixtures store them (see :func:`fixture_shape`)."""
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        x = x.to(self.header.device)
        dtype = next((p.dtype for p in self.parameters()), torch.float32)
        outs = self._run_batch(x.to(dtype), keep_all=True)
        result: dict[str, np.ndarray] = {}
        for i, ((c, h, w), n) in enumerate(self.out_dims):
            y = outs[i]
            assert y is not None
            arr = y.detach().to("cpu", torch.float32).contiguous().numpy()
            shape = (x.shape[0], c, h, w) if c * h * w == n else (x.shape[0], n)
            result[f"layer_{i:03d}"] = arr.reshape(shape)
        return result

    def fuse(self, winograd: bool = False) -> DarknetModel:
        """Fold batch norm into the convolutions/matrix products (:func:`darkconv.fuse.fuse_model`):
        faster inference; the state dict then no longer matches the ``.weights`` records.
        ``winograd=True`` also computes the big 3x3 stride-1 convolutions with Winograd's
        ``F(m, 3)`` (:func:`darkconv.winograd.winograd_model`; CPU, float32 rounding)."""
        from darkconv.nn.fuse import fuse_model

        fuse_model(self)
        if winograd:
            from darkconv.nn.winograd import winograd_model

            winograd_model(self)
        return self

    def set_bn_mode(self, mode: str) -> DarknetModel:
        """Switch every batch norm between Darknet's CPU and GPU formulas."""
        for m in self.modules():
            if isinstance(m, modules.DarknetBatchNorm):
                if mode not in modules.BN_MODES:
                    raise DarkconvError(f"bn mode must be one of {modules.BN_MODES}, got {mode!r}")
                m.mode = mode
        return self


def pick_device(device: str | torch.device | None) -> torch.device:
    """``auto`` (or None): CUDA when present, else CPU.  Asking for CUDA without one is an error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DarkconvError("--device cuda: no CUDA device is available (use cpu or auto)")
    return dev


def build(
    network_or_cfg: Network | str | os.PathLike[str],
    *,
    bn_mode: str = "cpu",
    device: str | torch.device | None = None,
) -> DarknetModel:
    """Build the torch model of a Network (or a cfg path / shipped cfg name)."""
    if bn_mode not in modules.BN_MODES:
        raise DarkconvError(f"bn mode must be one of {modules.BN_MODES}, got {bn_mode!r}")
    network = (
        network_or_cfg if isinstance(network_or_cfg, Network) else load_network(network_or_cfg)
    )
    ctx = Ctx(network, bn_mode)
    dev = pick_device(device) if device is not None else torch.device("cpu")
    check_parameters_fit(network, dev)
    built = []
    with dev:  # parameters are created on the target device ("meta" allocates nothing)
        for la in network.layers:
            factory = FACTORIES.get(la.type)
            if factory is None:
                raise UnsupportedError(
                    f"layer {la.index}: [{la.type}] has no torch implementation", la.span
                )
            try:
                built.append(factory(la, ctx))
            except (MemoryError, RuntimeError) as exc:
                if not is_out_of_memory(exc):
                    raise
                raise ResourceError(
                    f"layer {la.index} ({la.type}): out of memory allocating "
                    f"{human_count(la.params)} parameters on {dev}"
                ) from None
        model = DarknetModel(network, built)
    return model.eval()


def check_parameters_fit(network: Network, dev: torch.device) -> None:
    """Refuse a network whose parameters cannot fit on ``dev``, before allocating any."""
    if dev.type == "meta":
        return
    cost = parameter_cost(network)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        if cost.nbytes > free:
            raise ResourceError(
                f"{cost.what}: needs {human_bytes(cost.nbytes)}; {dev} has {human_bytes(free)} free"
            )
        return
    check_fits(cost)


def load(
    cfg: Network | str | os.PathLike[str],
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    *,
    bn_mode: str = "cpu",
    cutoff: int | None = None,
) -> DarknetModel:
    """Build ``cfg`` and, when given, load weights into it: a Darknet ``.weights`` file (its
    header becomes the model's ``header`` buffer) or a converted ``.pth``/``.safetensors``
    state dict.  ``cutoff=N`` reads a partial file holding layers below N (``darknet
    partial``); the other layers keep their init, as in Darknet."""
    from darkconv.weights.io import load_state_dict, read_weights

    network = cfg if isinstance(cfg, Network) else load_network(cfg)
    model = build(network, bn_mode=bn_mode)
    if weights is not None:
        if str(weights).endswith((".pth", ".pt", ".safetensors")):
            state = load_state_dict(weights)
            if cutoff is not None:
                state = {
                    k: v
                    for k, v in state.items()
                    if not k.startswith("layers.") or int(k.split(".")[1]) < cutoff
                }
        else:
            _, state = read_weights(weights, network, cutoff=cutoff)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or (missing and cutoff is None):
            raise DarkconvError(
                f"{weights}: state dict does not match the model "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
    return model.to(pick_device(device)).eval()
