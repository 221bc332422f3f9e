"""Torch stage: a :class:`~darkconv.parse.Network` in, an equivalent ``torch.nn.Module`` out.

One table maps each layer kind to its module (``factories``, used by ``builder``); ``activations``,
``modules``, ``pool``, ``spatial``, ``merge``, ``heads`` and ``recurrent`` hold the layers;
``fuse``, ``inplace`` and ``winograd`` are inference speed-ups.
"""
