"""State dicts on disk (.pth/.pt and .safetensors), safely, and atomic file writes.

* ``torch.load`` runs only with ``weights_only=True``: a pickle that wants to build arbitrary
  Python objects (and so could run code) is refused with a :class:`WeightsError`.
* Every write goes to a temporary file in the destination folder, then ``os.replace``: a failed
  conversion leaves nothing behind and never clobbers an existing file.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from darkconv.errors import WeightsError
from darkconv.weights import atomic as _atomic

if TYPE_CHECKING:
    import torch

__all__ = [
    "atomic_writer",
    "atomic_path",
    "check_output_path",
    "save_state_dict",
    "load_state_dict",
    "state_dict_format",
]

_PTH = (".pth", ".pt")
_SAFETENSORS = (".safetensors",)


def state_dict_format(path: str | os.PathLike[str]) -> str | None:
    """``"pth"``, ``"safetensors"`` or ``None``, from the file name's extension."""
    name = os.fspath(path).lower()
    if name.endswith(_PTH):
        return "pth"
    if name.endswith(_SAFETENSORS):
        return "safetensors"
    return None


def check_output_path(path: str | os.PathLike[str]) -> str:
    """Fail early (before any work) when ``path`` cannot be written."""
    return _atomic.check_output_path(path, WeightsError)


def atomic_path(path: str | os.PathLike[str]) -> contextlib.AbstractContextManager[str]:
    """:func:`darkconv.atomic.atomic_path` reporting :class:`WeightsError`."""
    return _atomic.atomic_path(path, WeightsError)


def atomic_writer(path: str | os.PathLike[str]) -> contextlib.AbstractContextManager[IO[bytes]]:
    """:func:`darkconv.atomic.atomic_writer` reporting :class:`WeightsError`."""
    return _atomic.atomic_writer(path, WeightsError)


def _format_or_fail(path: str) -> str:
    fmt = state_dict_format(path)
    if fmt is None:
        raise WeightsError(f"{path}: unknown state dict format (use .pth, .pt or .safetensors)")
    return fmt


def _safetensors(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise WeightsError(
            ".safetensors needs the optional `safetensors` package",
            hint="pip install 'darkconv[safetensors]'",
        ) from None


def save_state_dict(path: str | os.PathLike[str], sd: Mapping[str, torch.Tensor]) -> None:
    """Save ``sd`` as .pth/.pt (``torch.save``) or .safetensors, by extension, atomically."""
    import torch

    path = os.fspath(path)
    fmt = _format_or_fail(path)
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"state dict entry {bad[0]!r} is not a tensor")
    if fmt == "safetensors":
        st = _safetensors("safetensors.torch")
        tensors = {k: v.detach().contiguous() for k, v in sd.items()}
        with atomic_path(path) as tmp:
            try:
                st.save_file(tensors, tmp, metadata={"format": "pt"})
            except (ValueError, RuntimeError) as exc:
                raise WeightsError(f"cannot write {path}: {exc}") from None
        return
    with atomic_path(path) as tmp:
        try:
            torch.save(dict(sd), tmp)
        except OSError as exc:
            raise WeightsError(f"cannot write {path}: {exc.strerror or exc}") from None


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a .pth/.pt (``weights_only=True``, memory-mapped) or .safetensors state dict."""
    path = os.fspath(path)
    fmt = _format_or_fail(path)
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such file")
    if fmt == "safetensors":
        st = _safetensors("safetensors.torch")
        try:
            return dict(st.load_file(path))
        except Exception as exc:  # the Rust side raises its own SafetensorError
            raise WeightsError(f"{path}: not a readable .safetensors file ({exc})") from None
    return _load_pth(path)


def _load_pth(path: str) -> dict[str, torch.Tensor]:
    import pickle
    import zipfile

    import torch

    try:
        # weights_only=True: never run a pickle's code.  mmap keeps large files out of memory.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(
                path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
            )
    except pickle.UnpicklingError as exc:
        text = str(exc)
        with open(path, "rb") as f:
            raw_pickle = f.read(1) == b"\x80"  # a pickle PROTO opcode, not a torch.save zip
        if "GLOBAL" in text or "global" in text or raw_pickle:
            raise WeightsError(
                f"{path}: refused: the file holds Python objects other than tensors, and loading "
                "it could run code (darkconv loads .pth only with torch.load(weights_only=True))",
                hint="convert it from a trusted source, or re-save it as a plain state dict",
            ) from None
        detail = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("Unsupported")]
        why = f" ({detail[0]})" if detail else ""
        raise WeightsError(f"{path}: not a readable PyTorch file{why}") from None
    except (
        Exception
    ) as exc:  # garbage makes the unpickler fail in many ways (IndexError, KeyError...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path}: not a readable PyTorch file ({first})") from None
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{path}: entry {bad[0]!r} is not a tensor; expected a flat state dict")
    return dict(obj)
