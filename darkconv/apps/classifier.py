"""What ``darknet classifier predict`` prints: ``top_k``, then per dialect
pjreddie's ``"%5.2f%%: %s"`` of ``prob*100`` or AlexeyAB's ``"%s: %f"`` of ``prob``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from darkconv.apps.draw import class_name, percent

__all__ = ["PREDICT_LINES", "Prediction", "format_prediction", "top_k", "top_predictions"]


@dataclass(frozen=True)
class Prediction:
    """One line of ``classifier predict``: class ``index``, its ``name`` and probability."""

    index: int
    name: str
    prob: float
    style: str = "pjreddie"  # key of PREDICT_LINES

    @property
    def line(self) -> str:
        """The line Darknet prints (pjreddie: ``printf("%5.2f%%: %s\\n", prob*100, name)``)."""
        return PREDICT_LINES[self.style](self.prob, self.name)


def format_prediction(prob: float, name: str) -> str:
    """``%5.2f%%: %s`` of the float32 product ``prob*100``."""
    return f"{percent(prob):5.2f}%: {name}"


def _format_alexeyab(prob: float, name: str) -> str:
    """AlexeyAB's ``predict_classifier``: ``printf("%s: %f\\n", names[index], predictions[index])``."""
    return f"{name}: {float(prob):f}"


#: dialect -> ``line(prob, name)`` of ``classifier predict``
PREDICT_LINES: dict[str, Callable[[float, str], str]] = {
    "pjreddie": format_prediction,
    "alexeyab": _format_alexeyab,
}


def top_k(values: Sequence[float] | np.ndarray, k: int) -> list[int]:
    """Darknet's ``top_k``: insertion into ``k`` slots with a strict ``>``.

    On a tie the earlier (lower) index stays first; a NaN never displaces anything.  With
    ``k`` larger than the number of values, Darknet would leave ``-1`` slots (and then read
    out of bounds); here the result is simply shorter.
    """
    a = np.asarray(values, dtype=np.float32).reshape(-1)
    k = max(0, min(int(k), a.size))
    if k == 0:
        return []
    if not np.isnan(a).any():
        # equivalent to the insertion loop: a stable sort, descending
        return [int(i) for i in np.argsort(-a, kind="stable")[:k]]
    index = [-1] * k
    for i in range(a.size):
        curr = i
        for j in range(k):
            if index[j] < 0 or a[curr] > a[index[j]]:
                curr, index[j] = index[j], curr
            if curr < 0:
                break
    return [i for i in index if i >= 0]


def top_predictions(
    values: Sequence[float] | np.ndarray,
    k: int,
    names: Sequence[str] | None = None,
    style: str = "pjreddie",
) -> list[Prediction]:
    """The ``k`` lines ``classifier predict`` prints, as :class:`Prediction` objects."""
    a = np.asarray(values, dtype=np.float32).reshape(-1)
    return [Prediction(i, class_name(names, i), float(a[i]), style) for i in top_k(a, k)]
