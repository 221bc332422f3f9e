"""The reference models ``darkconv bench`` compares against, all optional and never downloaded.

``torchvision`` and ``timm`` rows are hand-written networks with a random init; an ``opencv`` row
runs ``cv2.dnn.readNetFromDarknet`` on the same cfg text and a random ``.weights`` file of the right
size, written beforehand by :func:`write_opencv_files`; an ``onnxruntime`` row runs the
``darkconv.export`` ONNX file of the same model (:func:`write_onnx_file`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from darkconv.bench.spec import ModelSpec, Prepared, Settings, random_state
from darkconv.errors import DarkconvError
from darkconv.parse.graph import Network, load_network, parse_network, write_network
from darkconv.parse.size import size_rule

__all__ = [
    "TORCHVISION_PEERS",
    "TIMM_PEERS",
    "peer_specs",
    "peer_model",
    "write_opencv_files",
    "prepare_opencv",
    "write_onnx_file",
    "prepare_onnxruntime",
]

TORCHVISION_PEERS = ("resnet50", "resnet101", "resnet152", "densenet121")
TIMM_PEERS = ("darknet53",)


def peer_specs(cfg_names: list[str], device: str) -> tuple[list[ModelSpec], list[str]]:
    """The optional reference models that are installed, and one note per skipped group."""
    specs: list[ModelSpec] = []
    notes: list[str] = []
    if _installed("torchvision"):
        specs += [ModelSpec(f"{n} (torchvision)", "torchvision", n) for n in TORCHVISION_PEERS]
    else:
        notes.append("torchvision not installed: its resnet50/101/152 and densenet121 skipped")
    if _installed("timm"):
        specs += [ModelSpec(f"{n} (timm)", "timm", n) for n in TIMM_PEERS]
    else:
        notes.append("timm not installed: its darknet53 skipped")
    opencv = [c for i, c in enumerate(cfg_names) if i == 0 or is_detector(c)]
    if not cfg_names:
        pass
    elif not _installed("cv2"):
        notes.append("opencv-python not installed: OpenCV DNN skipped")
    elif not hasattr(importlib.import_module("cv2").dnn, "readNetFromDarknet"):
        notes.append("OpenCV DNN skipped: this OpenCV has no Darknet importer (use opencv < 5)")
    elif device != "cpu":
        notes.append("OpenCV DNN skipped: the pip build runs on the CPU only")
    else:
        specs += [ModelSpec(f"{_stem(c)} (OpenCV DNN)", "opencv", c) for c in opencv]
    if not cfg_names:
        pass
    elif not (_installed("onnxruntime") and _installed("onnx") and _installed("onnxscript")):
        notes.append("onnxruntime skipped: pip install 'darkconv[onnx]'")
    elif device != "cpu":
        notes.append("onnxruntime skipped: its row runs the CPU execution provider only")
    else:
        specs.append(ModelSpec(f"{_stem(cfg_names[0])} (onnxruntime)", "onnxruntime", cfg_names[0]))
    return specs, notes


def is_detector(cfg: str) -> bool:
    """A cfg whose last layer is a yolo/region/detection head (it gets its own OpenCV row)."""
    try:
        return size_rule(load_network(cfg)) > 1
    except DarkconvError:
        return False


def _stem(cfg: str) -> str:
    base = os.path.basename(cfg)
    return base[:-4] if base.endswith(".cfg") else base


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def peer_model(spec: ModelSpec) -> Any:
    """A torchvision or timm model with a random init (no weights are downloaded)."""
    if spec.kind == "torchvision":
        import torchvision

        return getattr(torchvision.models, spec.target)(weights=None)
    if spec.kind == "timm":
        import timm

        return timm.create_model(spec.target, pretrained=False)
    raise ValueError(f"unknown model kind {spec.kind!r}")


def write_opencv_files(
    network: Network, folder: str | Path, stem: str, seed: int = 0
) -> tuple[str, str]:
    """Write ``stem.cfg`` (the network's cfg text) and a random ``stem.weights`` of the size
    Darknet expects; returns their paths.  Uses darkconv's writer when it is importable, else a
    0.2.0 header followed by the raw floats in record order."""
    folder = Path(folder)
    cfg_path, weights_path = folder / f"{stem}.cfg", folder / f"{stem}.weights"
    cfg_path.write_text(write_network(network), encoding="utf-8")
    state = random_state(network, seed)
    try:
        import torch

        from darkconv.weights.io import write_weights

        write_weights(weights_path, {k: torch.from_numpy(v) for k, v in state.items()}, network)
    except ImportError:
        header = np.array([0, 2, 0], "<i4").tobytes() + np.zeros(1, "<u8").tobytes()
        with open(weights_path, "wb") as f:
            f.write(header)
            for arr in state.values():
                f.write(arr.astype("<f4").tobytes())
    return str(cfg_path), str(weights_path)


def prepare_opencv(spec: ModelSpec, s: Settings) -> Prepared:
    import cv2

    if spec.files is None:
        raise ValueError("an opencv spec needs its (cfg, weights) files")
    cfg_path, weights_path = spec.files
    network = parse_network(Path(cfg_path).read_text(encoding="utf-8"), path=cfg_path)
    if s.threads:
        cv2.setNumThreads(s.threads)
    dnn: Any = cv2.dnn  # OpenCV >= 5 (and its type stubs) dropped the Darknet importer
    net = dnn.readNetFromDarknet(cfg_path, weights_path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    c, h, w = network.input
    blob = np.random.default_rng(0).random((s.batch, c, h, w), dtype=np.float32)
    # every output layer (a detector's three heads), not only the last: the whole network runs
    outputs = net.getUnconnectedOutLayersNames()

    def call() -> object:
        net.setInput(blob)
        return net.forward(outputs)

    return Prepared(call, network.params, network.bflops, [])


def write_onnx_file(
    network: Network, folder: str | Path, stem: str, seed: int = 0
) -> tuple[str, str]:
    """Write ``stem.cfg`` and ``stem.onnx``: ``darkconv.export`` of the network with the random
    parameters of :func:`random_state` (batch norm fused, dynamic batch, the default opset)."""
    import torch

    from darkconv.export import export
    from darkconv.nn.builder import build

    folder = Path(folder)
    cfg_path, onnx_path = folder / f"{stem}.cfg", folder / f"{stem}.onnx"
    cfg_path.write_text(write_network(network), encoding="utf-8")
    model = build(network)
    state = {k: torch.from_numpy(v) for k, v in random_state(network, seed).items()}
    model.load_state_dict(state, strict=False)
    export(model, onnx_path)
    return str(cfg_path), str(onnx_path)


def prepare_onnxruntime(spec: ModelSpec, s: Settings) -> Prepared:
    import onnxruntime as ort

    if spec.files is None:
        raise ValueError("an onnxruntime spec needs its (cfg, onnx) files")
    if s.dtype != "fp32":
        raise ValueError("the onnxruntime row runs the float32 export only")
    cfg_path, onnx_path = spec.files
    network = parse_network(Path(cfg_path).read_text(encoding="utf-8"), path=cfg_path)
    options = ort.SessionOptions()
    # onnxruntime's pool spins after each run by default, taking a core from whichever model
    # the interleaved bench runs next; its own latency barely depends on it (measured)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if s.threads:
        options.intra_op_num_threads = s.threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    c, h, w = network.input
    blob = np.random.default_rng(0).random((s.batch, c, h, w), dtype=np.float32)

    def call() -> object:
        return session.run(None, {"input": blob})

    return Prepared(call, network.params, network.bflops, [])
