"""Apps stage: an image and a model in, Darknet's results out, in either dialect.

Darknet-exact image loading (``imread``; JPEGs bit for bit as stb_image: ``jpeg``, ``jpeg_header``,
``jpeg_pixels``), letterboxing (``image``) and the network input (``preprocess``), box decoding
(``decode``, AlexeyAB: ``decode_ab``) and NMS (``nms``, ``nms_ab``), class labels (``labels``),
classifier top-k (``classifier``), printed lines and drawn boxes (``draw``, ``draw_ab``), the
dialect table (``dialects``) and its steps (``steps``), and the ``predict``/``detect`` API (``api``).
"""
