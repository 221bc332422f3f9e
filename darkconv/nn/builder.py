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
from collections.abc import Sequence
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
from darkconv.nn import modules, train_mode
from darkconv.nn.factories import BN_MODE, FACTORIES, Ctx
from darkconv.nn.size import check_input, resized_model
from darkconv.parse.budget import check_fits, human_bytes, human_count, parameter_cost
from darkconv.parse.graph import Layer, Network, load_network
from darkconv.parse.size import with_size

__all__ = ["FACTORIES", "HEAD_TYPES", "DarknetModel", "build", "load", "pick_device"]

HEAD_TYPES = ("yolo", "Gaussian_yolo", "region", "detection")
Shape3 = tuple[int, int, int]
BN_REQUESTS = ("cpu", "gpu")  # pjreddie's CPU or GPU build (AlexeyAB: one formula for both)


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
    route/shortcut needs.  A batch runs as one batch (default); ``batch_invariant = True`` runs
    its rows one by one so that each equals its batch-1 result bit for bit, as Darknet does
    (batched results differ from those in the last bits, within the fixtures' tolerance).
    An input of another size than the network's is a one-line :class:`DarkconvError`;
    :meth:`at_size` gives the same model at another size.
    """

    header: Tensor  # int64 (major, minor, revision, seen), a buffer

    def __init__(self, network: Network, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        major, minor, revision = network.facts.header  # what this Darknet's save_weights writes
        self.register_buffer("header", torch.tensor([major, minor, revision, 0], dtype=torch.int64))
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
        self.batch_invariant = False
        self.bn_formula = network.facts.bn_formula
        self.semantics = train_mode.DEFAULT_SEMANTICS  # model.train() only
        # The option DELTA_WRITERS reads: conv size, upsample stride (negative: reverse).
        sizes = [
            la.options.get(train_mode.WRITER_OPTION[la.type])
            if la.type in train_mode.WRITER_OPTION
            else None
            for la in network.layers
        ]
        self.overwrites = {
            flag: train_mode.overwritten_sources(self.types, self.sources, sizes, flag)
            for flag in (True, False)
        }
        self.build_options: dict[str, Any] = {}  # build()'s options, for at_size()

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
            # a layer that reads nothing ([implicit]) gets the input, for its batch size
            args = tuple(prev if s == i - 1 else x if s < 0 else outs[s] for s in src) or (x,)
            prev = layer(*args)
            if keep_all or i in self.keep:
                outs[i] = prev
        return outs

    def _run_batch(self, x: Tensor, keep_all: bool) -> list[Tensor | None]:
        # Darknet computes every image of a batch on its own (forward_convolutional_layer loops
        # over l.batch), and oneDNN/cuDNN pick other algorithms for other batch sizes, so a
        # batched conv can differ from the batch-1 result in the last bits.  With
        # ``batch_invariant`` each row is run alone: row i == the batch-1 result exactly.
        check_input(x, self.input_shape, self.inputs)
        if self.training:  # batch statistics need the whole batch
            return train_mode.train_forward(self, x)
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

    def set_semantics(self, name: str | train_mode.Semantics) -> DarknetModel:
        """Training semantics ``"cpu"`` or ``"gpu"`` (:data:`darkconv.nn.train_mode.SEMANTICS`)."""
        try:
            sem = (
                name if isinstance(name, train_mode.Semantics) else train_mode.semantics_named(name)
            )
        except ValueError as exc:
            raise DarkconvError(str(exc)) from None
        self.semantics = sem
        for m in self.modules():
            if hasattr(m, "semantics"):
                setattr(m, "semantics", sem)  # noqa: B010 (modules typed as nn.Module)
        return self

    def at_size(self, size: int | tuple[int, int] | None) -> DarknetModel:
        """This model at input ``size`` ``(w, h)`` (= ``[net] width/height`` edited), sharing
        its parameters: :func:`darkconv.nn.size.resized_model`."""
        return resized_model(self, size)

    def set_bn_mode(self, mode: str) -> DarknetModel:
        """Switch every batch norm between Darknet's CPU and GPU formulas."""
        for m in self.modules():
            if isinstance(m, modules.DarknetBatchNorm):
                if mode not in BN_REQUESTS:
                    raise DarkconvError(f"bn mode must be one of {BN_REQUESTS}, got {mode!r}")
                m.mode = BN_MODE[(self.bn_formula, mode)]
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
    size: int | tuple[int, int] | None = None,
    batch_invariant: bool = False,
    dialect: str | None = None,
    intended_activations: bool = False,
    nofuse: bool = False,
) -> DarknetModel:
    """Build the torch model of a Network (or a cfg path / shipped cfg name).

    ``dialect`` (``"pjreddie"``/``"alexeyab"``, default: detected from the cfg) picks whose
    Darknet the numbers follow.  ``intended_activations``: where AlexeyAB's CPU forward outputs 0
    for an activation its ``activate()`` does not know (relu6 everywhere; swish, mish, hard_mish,
    normalize_channels* outside the layers that compute them), compute the named formula
    instead (what the cfg means; the CUDA build for relu6).  ``nofuse``: AlexeyAB's numbers
    without the weight folding its apps do when loading (``outputs_nofuse`` in the fixtures; only
    weighted ``[shortcut]`` and ``share_index`` layers can differ by more than rounding).
    ``size=(w, h)`` builds it as if ``[net] width/height`` were edited
    (:func:`darkconv.parse.size.with_size`); ``batch_invariant=True`` runs batch rows one by one
    (bit-identical to batch 1)."""
    if bn_mode not in BN_REQUESTS:
        raise DarkconvError(f"bn mode must be one of {BN_REQUESTS}, got {bn_mode!r}")
    network = with_size(_network(network_or_cfg, dialect), size)
    network.check_buildable()
    ctx = Ctx(network, bn_mode, intended_activations, nofuse)
    dev = pick_device(device) if device is not None else torch.device("cpu")
    check_parameters_fit(network, dev)
    built = []
    with dev:  # parameters are created on the target device ("meta" allocates nothing)
        for la in network.layers:
            factory = FACTORIES.get(la.impl or la.type)
            if factory is None:
                raise UnsupportedError(
                    f"layer {la.index}: [{la.type}] has no torch implementation", la.span
                )
            try:
                built.append(factory(la, ctx))
            except ValueError as exc:  # a module refusing its geometry: name the layer
                raise GraphError(f"layer {la.index} [{la.type}]: {exc}", la.span) from None
            except (MemoryError, RuntimeError) as exc:
                if not is_out_of_memory(exc):
                    raise
                raise ResourceError(
                    f"layer {la.index} ({la.type}): out of memory allocating "
                    f"{human_count(la.params)} parameters on {dev}"
                ) from None
        for la, module in zip(network.layers, built, strict=True):
            if isinstance(module, modules.SharedConvolutional):
                module.bind(built[la.options["share_index"]])
        model = DarknetModel(network, built)
    model.batch_invariant = batch_invariant
    model.build_options = {
        "bn_mode": bn_mode, "intended_activations": intended_activations, "nofuse": nofuse
    }  # fmt: skip
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


def _network(network_or_cfg: Network | str | os.PathLike[str], dialect: str | None) -> Network:
    if not isinstance(network_or_cfg, Network):
        return load_network(network_or_cfg, dialect=dialect)
    if dialect is not None and dialect != network_or_cfg.dialect:
        raise DarkconvError(
            f"the network was parsed as {network_or_cfg.dialect}; parse it again with "
            f"dialect={dialect!r} (load_network(..., dialect=...))"
        )
    return network_or_cfg


def load(
    cfg: Network | str | os.PathLike[str],
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    *,
    bn_mode: str = "cpu",
    cutoff: int | None = None,
    size: int | tuple[int, int] | None = None,
    batch_invariant: bool = False,
    dialect: str | None = None,
    intended_activations: bool = False,
    nofuse: bool = False,
    allow_short: bool = False,
) -> DarknetModel:
    """Build ``cfg`` and, when given, load weights into it: a Darknet ``.weights`` file (its
    header becomes the model's ``header`` buffer) or a converted ``.pth``/``.safetensors``
    state dict.  ``cutoff=N`` reads a partial file holding layers below N (``darknet
    partial``); the other layers keep their init, as in Darknet.  ``dialect``,
    ``intended_activations`` and ``nofuse``: see :func:`build`.  ``allow_short``: read a
    ``.weights`` file that ends early as Darknet does (:func:`darkconv.weights.io.read_weights`).
    ``size``/``batch_invariant``: see :func:`build` (the same weights load at any size a fully
    convolutional net allows)."""
    from darkconv.weights.io import load_state_dict, read_weights

    network = with_size(_network(cfg, dialect), size)
    model = build(
        network, bn_mode=bn_mode, intended_activations=intended_activations, nofuse=nofuse,
        batch_invariant=batch_invariant,
    )  # fmt: skip
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
            _, state = read_weights(weights, network, cutoff=cutoff, allow_short=allow_short)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or (missing and cutoff is None):
            raise DarkconvError(
                f"{weights}: state dict does not match the model "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
    return model.to(pick_device(device)).eval()
