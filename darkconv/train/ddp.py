"""Many processes: ``torchrun --nproc_per_node=N -m darkconv train ...``.

``torch.distributed`` with ``gloo`` on CPU and ``nccl`` on CUDA (one GPU per local rank).
Every rank takes the cfg's ``batch`` images per iteration from its own random stream, runs the
exact step, and the gradients are averaged over the ranks right before each Darknet update
(what ``DistributedDataParallel``'s all-reduce does, once per update rather than once per
backward, so ``subdivisions`` cost no extra communication).  Only rank 0 logs and writes files.

How this relates to Darknet's ``-gpus 0,1,..``: there each GPU also takes the cfg's ``batch``,
but ``train_networks`` lets every GPU update its own copy and averages the *weights* every 4
batches, and ``learning_rate`` is multiplied by the GPU count.  Here one update sees the
averaged gradient of ``N x batch`` images at the cfg's learning rate: exactly one process with
``N x batch`` images (the CI test checks it on a network without batch norm).  With batch
norm, each rank normalises with its own batch's statistics (as each Darknet GPU does), so it is
not the same as one process with the whole batch; the rolling statistics written are rank 0's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["DistInfo", "averaged", "broadcast_model", "init_distributed"]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: Any  # torch.device


def init_distributed(device: str = "auto") -> DistInfo | None:
    """Join the process group torchrun set up (``WORLD_SIZE`` > 1), else ``None``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    import torch
    import torch.distributed as td

    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not td.is_initialized():
        td.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(td.get_rank(), td.get_world_size(), local, dev)


def broadcast_model(model: Any) -> None:
    """Every rank starts from rank 0's parameters, buffers and ``seen`` (as DDP does)."""
    import torch.distributed as td

    for t in list(model.parameters()) + list(model.buffers()):
        td.broadcast(t.data, src=0)


class _Averaged:
    """An optimizer proxy whose ``step`` first replaces each gradient by its mean over ranks."""

    def __init__(self, optimizer: Any, world: int) -> None:
        self._opt = optimizer
        self._world = world

    def step(self, closure: Any = None) -> Any:
        import torch
        import torch.distributed as td

        grads = [p.grad for g in self._opt.param_groups for p in g["params"] if p.grad is not None]
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads])
            td.all_reduce(flat)
            flat /= self._world
            offset = 0
            for g in grads:
                n = g.numel()
                g.copy_(flat[offset : offset + n].view_as(g))
                offset += n
        return self._opt.step(closure) if closure is not None else self._opt.step()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._opt, name)


def averaged(optimizer: Any, dist: DistInfo) -> Any:
    return _Averaged(optimizer, dist.world)
