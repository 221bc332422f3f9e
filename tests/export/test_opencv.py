"""A second ONNX consumer: OpenCV's DNN module reads the plain exports and reproduces Darknet's
outputs (fixtures/nets, batch 1).  Skips without OpenCV."""

from __future__ import annotations

import pytest
from export_util import NET_NAMES, NET_TOL, exported, net_files, net_input, net_outputs
from fixture_util import rel_err

cv2 = pytest.importorskip("cv2", reason="OpenCV not installed (opencv-python-headless)")
pytest.importorskip("onnxscript", reason="onnxscript missing: pip install 'darkconv[onnx]'")

if int(cv2.__version__.split(".")[0]) < 5:
    pytest.skip(
        f"OpenCV {cv2.__version__}: the 4.x ONNX importer rejects BOOL constants and ScatterND "
        "(README, Export); OpenCV 5 reads the exports",
        allow_module_level=True,
    )


@pytest.mark.parametrize("name", NET_NAMES)
def test_opencv_reads_the_export(name: str) -> None:
    cfg, weights = net_files(name)
    net = cv2.dnn.readNetFromONNX(str(exported(cfg, weights, ".onnx", via_cli=True)))
    net.setInput(net_input(name))
    names = list(net.getUnconnectedOutLayersNames())
    ref = net_outputs(name)
    assert set(names) <= set(ref), names
    for out_name, out in zip(names, net.forward(names), strict=True):
        assert rel_err(out.reshape(ref[out_name].shape), ref[out_name]) <= NET_TOL, out_name
