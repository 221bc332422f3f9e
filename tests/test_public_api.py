"""The public names documented in the README resolve from their documented paths."""

from __future__ import annotations

import subprocess
import sys


def test_weights_package_reexports() -> None:
    from darkconv.weights import io, load_state_dict, read_weights, save_state_dict, write_weights

    assert read_weights is io.read_weights and write_weights is io.write_weights
    assert save_state_dict is io.save_state_dict and load_state_dict is io.load_state_dict


def test_top_level_api() -> None:
    import darkconv
    from darkconv.apps import api
    from darkconv.nn import builder
    from darkconv.parse import load_network

    assert darkconv.load is builder.load and darkconv.build is builder.build
    assert darkconv.predict is api.predict and darkconv.detect is api.detect
    assert darkconv.load_network is load_network
    assert callable(darkconv.build("darknet", device="meta").fuse)


def test_parse_side_imports_no_torch() -> None:
    code = (
        "import sys, darkconv, darkconv.parse, darkconv.weights.format\n"
        "from darkconv.parse import load_network\n"
        "load_network('yolov3').weights_bytes()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
