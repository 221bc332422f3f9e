"""``darkconv.export(model, path, ...)``: a DarknetModel written as ONNX, TorchScript or a
``torch.export`` program, the format taken from the file extension.

The exported graph is the model's own forward (the same ops the fixtures check), optionally
followed by Darknet's box decoding (:mod:`darkconv.export.decode`) and, in ONNX, the
``NonMaxSuppression`` op (:mod:`darkconv.export.nms`).  Inputs and outputs are float32 in every
case; ``fp16`` computes the network in float16 inside the graph.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from darkconv import __version__
from darkconv.apps.api import model_network
from darkconv.errors import DarkconvError, UnsupportedError
from darkconv.export.decode import DecodeHeads, model_heads, prob_classes
from darkconv.export.nms import MIN_NMS_OPSET, append_nms
from darkconv.nn.fuse import fuse_model
from darkconv.weights.atomic import atomic_path, check_output_path

__all__ = [
    "DEFAULT_OPSET",
    "FORMATS",
    "MAX_OPSET",
    "MIN_OPSET",
    "ExportModule",
    "ExportOptions",
    "export",
    "output_names",
]

#: extension -> format name
FORMATS = {".onnx": "onnx", ".pt": "torchscript", ".pt2": "torch.export"}
DEFAULT_OPSET = 20  # torch.onnx's default in torch 2.9+
MIN_OPSET, MAX_OPSET = 13, 23  # the range the tests cover (tests/export)
DYNAMO_MIN_OPSET = 18  # below it: the TorchScript-based exporter
_EXTRA = "pip install 'darkconv[onnx]'"


@dataclass(frozen=True)
class ExportOptions:
    """What :func:`export` writes (see its docstring)."""

    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = True
    fp16: bool = False
    fuse: bool = True
    decode: bool = False
    nms: bool = False
    thresh: float = 0.5
    nms_thresh: float = 0.45
    max_det: int = 100

    def check(self, fmt: str) -> None:
        if fmt == "onnx" and not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise UnsupportedError(
                f"--opset {self.opset}: supported opsets are {MIN_OPSET}..{MAX_OPSET}"
            )
        if self.nms and fmt != "onnx":
            raise UnsupportedError("--nms adds the ONNX NonMaxSuppression op: write a .onnx file")
        if self.nms and self.opset < MIN_NMS_OPSET:
            raise UnsupportedError(f"--nms needs --opset {MIN_NMS_OPSET} or later")
        if self.max_det < 1:
            raise UnsupportedError(f"--max-det must be at least 1, got {self.max_det}")


class ExportModule(nn.Module):
    """The graph that is exported: float32 ``(N, c, h, w)`` in; the head outputs (or the
    network output) out, or ``(boxes, scores)`` with a decoder."""

    def __init__(self, model: nn.Module, decoder: DecodeHeads | None, fp16: bool) -> None:
        super().__init__()
        self.model, self.decoder, self.fp16 = model, decoder, fp16

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        if self.fp16:
            x = x.half()
        out = self.model(x)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        if self.decoder is not None:
            outs = list(self.decoder(outs))
        return tuple(o.float() for o in outs)


def output_names(model: Any, decode: bool = False, nms: bool = False) -> list[str]:
    """The graph's output names: ``layer_NNN`` per head (or the output layer), ``boxes,
    scores`` with ``decode``, ``num_detections, boxes, scores, classes`` with ``nms``."""
    if nms:
        return ["num_detections", "boxes", "scores", "classes"]
    if decode:
        return ["boxes", "scores"]
    # what DarknetModel.forward returns: the head outputs in layer order, else the output layer
    heads = tuple(getattr(model, "heads", ()))
    return [f"layer_{i:03d}" for i in (heads or (model_network(model).output_index,))]


def _export_module(model: nn.Module, opts: ExportOptions) -> ExportModule:
    network = model_network(model)
    work = copy.deepcopy(model)  # never change the caller's model
    work.network = network  # (dropped by DarknetModel's pickling)
    if hasattr(work, "batch_invariant"):
        # one batched graph; the row-by-row loop is eager-only
        setattr(work, "batch_invariant", False)  # noqa: B010
    if opts.fuse:
        fuse_model(work, prepack=False)  # plain conv2d: oneDNN's packed ops do not export
    for module in work.modules():  # a model the caller fused already: its packed copies too
        if getattr(module, "prepack", False):
            setattr(module, "prepack", False)  # noqa: B010
    work = work.to("cpu", torch.float16 if opts.fp16 else torch.float32).eval()
    work.requires_grad_(False)
    decoder = None
    if opts.decode:
        heads = model_heads(model, network)
        _, net_h, net_w = network.input
        decoder = DecodeHeads(heads, prob_classes(network, heads), net_w, net_h)
    return ExportModule(work, decoder, opts.fp16).eval()


def _example(model: Any, batch: int) -> Tensor:
    network = model_network(model)
    c, h, w = network.input
    shape = (batch, c, h, w) if c and h and w else (batch, network.inputs)  # [net] inputs=
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise DarkconvError(f"ONNX export needs {', '.join(missing)}: {_EXTRA}")


def _dynamic(opts: ExportOptions) -> dict[str, Any] | None:
    if not opts.dynamic_batch:
        return None
    return {"x": {0: torch.export.Dim("batch", min=1, max=4096)}}


def _write_onnx(module: ExportModule, x: Tensor, names: Sequence[str], tmp: str,
                opts: ExportOptions, meta: dict[str, str]) -> None:  # fmt: skip
    _require("onnx", "onnxscript")
    import onnx

    plain = ["boxes", "scores"] if opts.nms else list(names)
    if opts.opset >= DYNAMO_MIN_OPSET:
        program = torch.onnx.export(
            module, (x,), None, dynamo=True, opset_version=opts.opset, input_names=["input"],
            output_names=plain, dynamic_shapes=_dynamic(opts), verbose=False,
        )  # fmt: skip
        assert program is not None  # (None only when given an output file)
        proto = program.model_proto
    else:
        # The dynamo exporter writes opset 18 and converts down, which fails for some ops
        # (Pad); the TorchScript-based exporter emits older opsets directly.
        _register_decompositions()
        axes = {n: {0: "batch"} for n in ["input", *plain]} if opts.dynamic_batch else None
        torch.onnx.export(
            module, (x,), tmp, dynamo=False, opset_version=opts.opset, input_names=["input"],
            output_names=plain, dynamic_axes=axes,
        )  # fmt: skip
        proto = onnx.load(tmp)
    got = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if got != opts.opset:
        raise UnsupportedError(f"--opset {opts.opset}: torch.onnx wrote opset {got} instead")
    if opts.nms:
        proto = append_nms(proto, opts.thresh, opts.nms_thresh, opts.max_det)
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save_model(proto, tmp)


_SCALAR_TYPES = {"Double": torch.float64, "Float": torch.float32, "Half": torch.float16}


def _expm1(g: Any, x: Any) -> Any:
    # elu/selu: ONNX has no expm1; exp(x) - 1 is also what Darknet's elu_activate computes
    dtype = _SCALAR_TYPES.get(x.type().scalarType(), torch.float32)
    return g.op("Sub", g.op("Exp", x), g.op("Constant", value_t=torch.tensor(1, dtype=dtype)))


def _register_decompositions() -> None:
    """Teach the TorchScript-based exporter the ops it lacks (once per process)."""
    torch.onnx.register_custom_op_symbolic("aten::expm1", _expm1, MIN_OPSET)


def _write_torchscript(module: ExportModule, x: Tensor, tmp: str) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(module, (x,), check_trace=False)
    torch.jit.save(traced, tmp)


def _write_pt2(module: ExportModule, x: Tensor, tmp: str, opts: ExportOptions) -> None:
    program = torch.export.export(module, (x,), dynamic_shapes=_dynamic(opts), strict=False)
    torch.export.save(program, tmp)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' chatter (tracer and deprecation warnings from torch internals,
    the ONNX registry's notes about torchvision ops) while a file is written."""
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    registry.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
            # fp16: Darknet's -FLT_MAX maxpool padding becomes -inf, as intended
            warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning)
            yield
    finally:
        registry.setLevel(level)


def export(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    fp16: bool = False,
    fuse: bool = True,
    decode: bool = False,
    nms: bool = False,
    thresh: float = 0.5,
    nms_thresh: float = 0.45,
    max_det: int = 100,
) -> str:
    """Write ``model`` (a :class:`~darkconv.nn.builder.DarknetModel`) to ``path``.

    The format comes from the extension: ``.onnx`` (``torch.onnx`` with ``opset``), ``.pt``
    (TorchScript, ``torch.jit.load``), ``.pt2`` (``torch.export``, ``torch.export.load``).
    ``dynamic_batch``: the batch dimension is symbolic (else fixed at 1).  ``fp16``: the network
    runs in float16 (inputs and outputs stay float32).  ``fuse``: batch norm folded first.
    ``decode``: the outputs become ``boxes`` (N, K, 4: x1 y1 x2 y2 as fractions of the network
    input) and ``scores`` (N, K, classes: objectness x class).  ``nms`` (ONNX only, implies
    ``decode``): ``NonMaxSuppression`` with ``thresh``, ``nms_thresh`` and ``max_det``, outputs
    ``num_detections, boxes, scores, classes``.  The model itself is not modified.  Returns the
    path written; the file appears only when complete.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    fmt = FORMATS.get(ext)
    if fmt is None:
        raise UnsupportedError(
            f"{path}: unknown export format {ext or '(no extension)'}; use one of "
            + ", ".join(FORMATS)
        )
    opts = ExportOptions(opset, dynamic_batch, fp16, fuse, decode or nms, nms, thresh,
                         nms_thresh, max_det)  # fmt: skip
    opts.check(fmt)
    if fmt == "onnx":
        _require("onnx", "onnxscript")
    check_output_path(path)
    network = model_network(model)
    module = _export_module(model, opts)
    names = output_names(model, opts.decode, opts.nms)
    # a batch of 2 keeps torch.export from specialising the batch to the example's size 1
    x = _example(model, 2 if dynamic_batch else 1)
    meta = {
        "darkconv_version": __version__,
        "cfg": os.path.basename(network.path or ""),
        "input": "float32 (N, c, h, w) (or (N, inputs)), Darknet's network input "
        "(RGB in [0, 1], letterboxed)",
        "outputs": ", ".join(names),
        "boxes": "x1 y1 x2 y2 as fractions of the network input (undo the letterbox yourself)",
        "fp16": str(fp16),
    }
    with atomic_path(path) as tmp, _quiet():
        if fmt == "onnx":
            _write_onnx(module, x, names, tmp, opts, meta)
        elif fmt == "torchscript":
            _write_torchscript(module, x, tmp)
        else:
            _write_pt2(module, x, tmp, opts)
    return path
