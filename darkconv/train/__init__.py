"""Training stage: Darknet's exact training step on a :class:`~darkconv.nn.DarknetModel`.

Takes a model in ``train()`` mode, raw batches and Darknet truth rows; gives Darknet's deltas as
gradients, its SGD update and learning-rate schedule (``train_step`` = one ``train_network``)."""

from darkconv.train.hyper import (
    POLICIES,
    GlibcRand,
    TrainHyper,
    get_current_rate,
    install_glibc_rand,
    truth_size,
)
from darkconv.train.losses import HeadLoss, LossResult, darknet_loss
from darkconv.train.optim import DarknetLR, DarknetSGD, make_optimizer, param_groups
from darkconv.train.step import StepResult, set_semantics, train_step

__all__ = [
    "POLICIES",
    "GlibcRand",
    "install_glibc_rand",
    "TrainHyper",
    "get_current_rate",
    "truth_size",
    "HeadLoss",
    "LossResult",
    "darknet_loss",
    "DarknetLR",
    "DarknetSGD",
    "make_optimizer",
    "param_groups",
    "StepResult",
    "set_semantics",
    "train_step",
]
