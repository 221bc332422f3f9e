"""Torch stage: a :class:`~darkconv.parse.Network` in, an equivalent ``torch.nn.Module`` out.

One table maps each layer kind to its module (``builder``); ``activations``, ``modules``, ``spatial``,
``heads`` and ``recurrent`` hold the layers; ``fuse`` and ``winograd`` are inference speed-ups.
"""
