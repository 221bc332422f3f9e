"""Apps stage: an image and a model in, Darknet's results out.

Darknet-exact image loading (``imread``; JPEGs bit for bit as stb_image: ``jpeg``, ``jpeg_header``,
``jpeg_pixels``) and letterboxing (``image``), box decoding (``decode``) and NMS (``nms``),
class labels (``labels``), classifier top-k (``classifier``), printed lines and drawn boxes (``draw``),
and the ``predict``/``detect`` Python API (``api``).
"""
