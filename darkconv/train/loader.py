"""``torch.utils.data`` workers that do what Darknet's ``load_data`` threads do.

Darknet's loaders draw every image of a batch at random with replacement
(``get_random_paths``: ``rand() % m``); :class:`DarknetBatches` does the same from a seeded
generator, one batch (``batch * subdivisions`` images, what one ``train_network`` call takes) at
a time, and picks the input size of each batch (``random=1``: a new size every 10 batches,
``train_detector``'s ``(rand() % 10 + 10) * 32``, 608 for the last 200 batches).  The
datasets decode and augment in the workers and return Darknet's ``X`` rows (``(3, h, w)``
float32) and truth rows (``net->truths`` floats).

A bad image in a worker does not raise there (a worker's exception reaches the main process
as a traceback dump): the row comes back with its error, and :func:`checked` raises it in the
main process as one :class:`~darkconv.train.data.DataError` naming the list file and line.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from darkconv.apps.dialects import AppDialect
from darkconv.apps.image import load_image
from darkconv.apps.preprocess import classifier_input, detector_input
from darkconv.errors import DarkconvError
from darkconv.train.augment import Augment, classifier_sample, detection_sample
from darkconv.train.data import DataError, Sample

__all__ = [
    "DarknetBatches",
    "TrainSet",
    "ValidSet",
    "checked",
    "collate",
    "loader_kwargs",
    "multiscale_dim",
]


def multiscale_dim(rng: np.random.Generator, batch_num: int, max_batches: int) -> int:
    """``train_detector``'s ``random=1`` size: ``(rand() % 10 + 10) * 32``, 608 near the end."""
    if batch_num + 200 > max_batches:
        return 608
    return int(rng.integers(10) + 10) * 32


class DarknetBatches(Sampler[list[tuple[int, int, int]]]):
    """Batches of ``(index, w, h)``: random images with replacement, ``count`` batches.

    ``rank``/``world`` give each DDP process its own stream (seed + rank).
    """

    def __init__(
        self,
        n: int,
        batch: int,
        count: int,
        size: tuple[int, int],
        seed: int,
        *,
        start_batch: int = 0,
        random_resize: bool = False,
        max_batches: int = 0,
        rank: int = 0,
    ) -> None:
        self.n, self.batch, self.count, self.size = n, batch, count, size
        self.seed, self.start, self.rank = seed, start_batch, rank
        self.random_resize, self.max_batches = random_resize, max_batches

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        rng = np.random.default_rng([self.seed, self.rank, self.start])
        resize_rng = np.random.default_rng([self.seed, self.start])  # same size on every rank
        w, h = self.size
        for k in range(self.count):
            if self.random_resize and k % 10 == 0:
                w = h = multiscale_dim(resize_rng, self.start + k, self.max_batches)
            idx = rng.integers(self.n, size=self.batch)
            yield [(int(i), w, h) for i in idx]


class TrainSet(Dataset[Any]):
    """Augmented training rows for a classifier (one-hot truth) or a detector (box rows)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        kind: str,
        augment: Augment,
        classes: int,
        num_boxes: int = 90,
        seed: int = 0,
        decoder: str = "stb",
    ) -> None:
        self.samples, self.kind, self.augment = samples, kind, augment
        self.classes, self.num_boxes, self.seed = classes, num_boxes, seed
        self.decoder = decoder  # "stb": Darknet's exact JPEG decode; "pillow": faster
        self.calls = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[Any, Any, str | None]:
        i, w, h = key
        s = self.samples[i]
        self.calls += 1
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        rng = np.random.default_rng([self.seed, wid, self.calls, i])
        try:
            im = load_image(s.path, decoder=self.decoder)
            if self.kind == "detector":
                boxes = s.boxes if s.boxes is not None else np.zeros((0, 5), np.float32)
                x, y = detection_sample(rng, im, boxes, self.augment, w, h, self.num_boxes)
            else:
                x = classifier_sample(rng, im, self.augment, w, h)
                y = np.zeros(self.classes, dtype=np.float32)
                y[list(s.hot)] = 1
        except DarkconvError as err:
            return None, None, f"{s.where}: {err.headline()}"
        return x, y, None


class ValidSet(Dataset[Any]):
    """Validation images sized as ``predict`` (``app="classifier"``) or ``detect`` / ``map``
    size them in the network's dialect (pjreddie: letterbox)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        w: int,
        h: int,
        dialect: AppDialect,
        app: str = "detector",
        letter_box: bool = False,
    ) -> None:
        self.samples, self.w, self.h = samples, w, h
        self.dialect, self.app, self.letter_box = dialect, app, letter_box

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, Any, str | None]:
        s = self.samples[i]
        try:
            im = load_image(s.path)
        except DarkconvError as err:
            return None, None, f"{s.where}: {err.headline()}"
        if self.app == "classifier":
            x = classifier_input(im, self.w, self.h, self.dialect)
        else:
            x = detector_input(im, self.w, self.h, self.dialect, self.letter_box)
        return x, np.asarray([i, im.shape[2], im.shape[1]], dtype=np.int64), None


def collate(rows: list[tuple[Any, Any, str | None]]) -> tuple[Any, Any, str | None]:
    """Stack rows into ``X`` ``(n, 3, h, w)`` and ``Y`` ``(n, truths)``.  It runs in the worker,
    so a row's error is passed on (``(None, None, message)``) for :func:`checked` to raise."""
    for _, _, err in rows:
        if err is not None:
            return None, None, err
    x = torch.from_numpy(np.stack([r[0] for r in rows]))
    y = torch.from_numpy(np.stack([r[1] for r in rows]))
    return x, y, None


def checked(item: tuple[Any, Any, str | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of :func:`collate`, or its error as a :class:`DataError` (main process)."""
    x, y, err = item
    if err is not None:
        raise DataError(err)
    return x, y


def loader_kwargs(workers: int) -> dict[str, Any]:
    """DataLoader options: workers keep prefetching while the model trains."""
    if workers <= 0:
        return {"num_workers": 0}
    return {
        "num_workers": workers,
        "persistent_workers": True,
        "prefetch_factor": max(2, math.ceil(4 / workers)),
    }
