"""Apps stage: an image and a model in, Darknet's results out.

Darknet-exact image loading and letterboxing (``image``), box decoding (``decode``) and NMS (``nms``),
class labels (``labels``), classifier top-k (``classifier``), printed lines and drawn boxes (``draw``),
and the ``predict``/``detect`` Python API (``api``).
"""
