"""Weights stage: Darknet ``.weights`` bytes in and out, as PyTorch state dicts.

``format`` derives the file layout (header, records in file order) from the graph, without torch;
``io`` reads and writes ``.weights``; ``statedict`` reads and writes ``.pth``/``.safetensors``;
``atomic`` is the one way files are written (temporary file, then rename).
"""

from __future__ import annotations

import importlib
from typing import Any

# The torch-backed readers load on first use, so `darkconv.weights.format` stays torch-free.
_LAZY = {
    "read_weights": "darkconv.weights.io",
    "write_weights": "darkconv.weights.io",
    "read_header": "darkconv.weights.io",
    "save_state_dict": "darkconv.weights.io",
    "load_state_dict": "darkconv.weights.io",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'darkconv.weights' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
