"""Export stage: a DarknetModel in, a deployable file out: ONNX (``.onnx``), TorchScript
(``.pt``) or a ``torch.export`` program (``.pt2``), with optional box decoding and ONNX NMS.

``darkconv.export(model, path, ...)`` calls :func:`darkconv.export.api.export`: the package
itself is callable, so that the stage and its one entry point share the name.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from darkconv.export.api import (
    DEFAULT_OPSET,
    FORMATS,
    MAX_OPSET,
    MIN_OPSET,
    ExportOptions,
    export,
    output_names,
)

__all__ = ["DEFAULT_OPSET", "FORMATS", "MAX_OPSET", "MIN_OPSET", "ExportOptions", "export",
           "output_names"]  # fmt: skip


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
