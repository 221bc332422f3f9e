"""Checkpoints as Darknet's training loops write them (``examples/classifier.c``
``train_classifier``, ``examples/detector.c`` ``train_detector``).

Every file is a plain ``.weights`` (``save_weights``: header 0.2.0 with the current ``seen``),
written atomically by :func:`darkconv.weights.io.write_weights`, so a crash or Ctrl-C never
leaves half a file and Darknet loads each of them.

=============  ==========================================  =====================================
loop           when                                        file (``BASE`` = the cfg's base name)
=============  ==========================================  =====================================
detector       batch ``i % 100 == 0``                      ``BACKUP/BASE.backup``
detector       ``i % 10000 == 0`` or ``i < 1000 and        ``BACKUP/BASE_i.weights``
               i % 100 == 0``
detector       the end                                     ``BACKUP/BASE_final.weights``
classifier     each new epoch (``seen / N`` grows)         ``BACKUP/BASE_EPOCH.weights``
classifier     batch ``i % 1000 == 0``                     ``BACKUP/BASE.backup``
classifier     the end                                     ``BACKUP/BASE.weights``
both           Ctrl-C (darkconv only)                      ``BACKUP/BASE.backup``
=============  ==========================================  =====================================
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from darkconv.errors import DarkconvError

__all__ = ["CONV_CUTOFF", "Marks", "base_name", "conv_cutoff", "marks_for", "save_checkpoint"]

CONV_CUTOFF = re.compile(r"\.conv\.(\d+)$")


def base_name(cfg: str) -> str:
    """``basecfg``: the file name without folders and without its extension."""
    name = os.path.basename(cfg)
    return name.rsplit(".", 1)[0] if "." in name else name


def conv_cutoff(path: str) -> int | None:
    """``NAME.conv.N`` (``darknet partial``) holds layers ``0..N-1``: the cutoff to read it."""
    m = CONV_CUTOFF.search(os.path.basename(path))
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Marks:
    """Which files a finished batch writes; see the module table."""

    backup: bool
    numbered: int | None  # N of BASE_N.weights

    @property
    def any(self) -> bool:
        return self.backup or self.numbered is not None


def marks_for(kind: str, batch_num: int, epoch_before: int, epoch_now: int) -> Marks:
    """The checkpoint marks after batch ``batch_num`` (``get_current_batch``)."""
    i = batch_num
    if kind == "detector":
        numbered = i if (i % 10000 == 0 or (i < 1000 and i % 100 == 0)) else None
        return Marks(backup=i % 100 == 0, numbered=numbered)
    return Marks(backup=i % 1000 == 0, numbered=epoch_now if epoch_now > epoch_before else None)


def final_name(kind: str, base: str) -> str:
    return f"{base}_final.weights" if kind == "detector" else f"{base}.weights"


def save_checkpoint(model: Any, path: str, seen: int) -> str:
    """``save_weights``: the model's state with header ``seen``, written atomically."""
    import torch

    from darkconv.weights.io import write_weights

    network = model.network
    if network is None:
        raise DarkconvError(f"cannot write {path}: the model has no network attached")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    header = state.get("header", torch.tensor([0, 2, 0, 0], dtype=torch.int64)).clone()
    header[3] = int(seen)
    state["header"] = header
    write_weights(path, state, network)
    return path
