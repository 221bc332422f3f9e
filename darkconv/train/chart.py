"""``--chart FILE.png``: the picture AlexeyAB's Darknet keeps in ``chart.png``.

The average loss (Darknet's ``avg``) against the iteration, and the validation figure
(mAP@0.5 of a detector, top-1 of a classifier) on a second axis, refreshed during the run and
written atomically.  matplotlib is an optional extra (``pip install darkconv[chart]``).
"""

from __future__ import annotations

import os
import time

from darkconv.errors import DarkconvError
from darkconv.weights.atomic import atomic_path

__all__ = ["Chart"]

REFRESH_SECONDS = 10.0


class Chart:
    def __init__(self, path: str, title: str, max_batches: int, metric: str = "mAP@0.5") -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
        except ImportError:
            raise DarkconvError(
                "--chart needs matplotlib: pip install 'darkconv[chart]' (or matplotlib)"
            ) from None
        self.path, self.title, self.max_batches, self.metric = path, title, max_batches, metric
        self.loss: list[tuple[int, float]] = []
        self.maps: list[tuple[int, float]] = []
        self.written = 0.0

    def add_loss(self, batch: int, avg_loss: float) -> None:
        self.loss.append((batch, avg_loss))

    def add_map(self, batch: int, value: float) -> None:
        self.maps.append((batch, value))
        self.write()

    def maybe_write(self, batch: int) -> None:
        if time.monotonic() - self.written >= REFRESH_SECONDS:
            self.write()

    def write(self) -> None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=80)
        try:
            if self.loss:
                xs, ys = zip(*self.loss, strict=True)
                ax.plot(xs, ys, color="tab:blue", lw=1.2, label="avg loss")
            ax.set_xlabel("iteration (batch)")
            ax.set_ylabel("avg loss", color="tab:blue")
            if self.max_batches:
                ax.set_xlim(0, self.max_batches)
            if self.loss:  # the first iterations' loss would flatten the rest of the curve
                tail = [v for _, v in self.loss[len(self.loss) // 20 :]]
                ax.set_ylim(0, max(tail) * 1.15 if max(tail) > 0 else 1)
            ax.grid(alpha=0.3)
            handles, labels = ax.get_legend_handles_labels()
            if self.maps:
                ax2 = ax.twinx()
                mx, my = zip(*self.maps, strict=True)
                ax2.plot(mx, my, "o-", color="tab:red", ms=3, lw=1, label=self.metric)
                ax2.set_ylim(0, 1)
                ax2.set_ylabel(self.metric, color="tab:red")
                ax2.annotate(f"{my[-1]:.3f}", (mx[-1], my[-1]), textcoords="offset points",
                             xytext=(-30, -14), color="tab:red", fontsize=8)  # fmt: skip
                h2, l2 = ax2.get_legend_handles_labels()
                handles, labels = handles + h2, labels + l2
            last = f"{self.loss[-1][1]:.3f}" if self.loss else "-"
            ax.set_title(f"{self.title}: iteration {self.loss[-1][0] if self.loss else 0}, "
                         f"avg loss {last}", fontsize=10)  # fmt: skip
            if handles:
                ax.legend(handles, labels, loc="lower left", fontsize=8)
            fig.tight_layout()
            with atomic_path(self.path) as tmp:
                fig.savefig(tmp, format="png")
        finally:
            plt.close(fig)
        self.written = time.monotonic()

    def exists(self) -> bool:
        return os.path.exists(self.path)
