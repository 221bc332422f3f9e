"""darkconv: Darknet .cfg and .weights files as first-class PyTorch.

The parse side (``load_network``, ``parse_network``, ``write_network``, the errors) imports
no torch.  Torch-backed names (``build``, ``load``, ``DarknetModel``, ``read_weights``,
``predict``, ``detect`` ...) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from darkconv.errors import (
    CfgError,
    CfgSyntaxError,
    DarkconvError,
    GraphError,
    ImageError,
    Span,
    UnsupportedError,
    WeightsError,
)
from darkconv.parse.graph import Layer, Network, load_network, parse_network, write_network

__version__ = "0.1.0"

# name -> module that defines it; resolved lazily so `import darkconv` stays light.
_LAZY = {
    "build": "darkconv.nn.builder",
    "load": "darkconv.nn.builder",
    "DarknetModel": "darkconv.nn.builder",
    "read_weights": "darkconv.weights.io",
    "write_weights": "darkconv.weights.io",
    "read_header": "darkconv.weights.io",
    "save_state_dict": "darkconv.weights.io",
    "load_state_dict": "darkconv.weights.io",
    "predict": "darkconv.apps.api",
    "detect": "darkconv.apps.api",
    "load_image": "darkconv.apps.imread",
    # the export stage is a callable package: darkconv.export(model, path, ...)
    "export": "darkconv.export",
}

__all__ = [
    "__version__",
    "CfgError",
    "CfgSyntaxError",
    "DarkconvError",
    "GraphError",
    "ImageError",
    "Layer",
    "Network",
    "Span",
    "UnsupportedError",
    "WeightsError",
    "load_network",
    "parse_network",
    "write_network",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'darkconv' has no attribute {name!r}")
    imported = importlib.import_module(module)
    value = imported if module == f"darkconv.{name}" else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
