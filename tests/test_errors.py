"""A table of bad cfgs: each gives one DarkconvError naming the place, via the API and the CLI."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from conftest import CFG_DIR
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from darkconv.cli.main import cli, main
from darkconv.errors import CfgError, DarkconvError
from darkconv.parse.graph import parse_network

NET = "[net]\nwidth=16\nheight=16\nchannels=3\n"
CONV = "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\n"

# (case, cfg text, expected line, message fragment)
BAD = [
    ("option before section", "width=3\n" + NET, 1, "before the first section"),
    ("first not net", CONV + NET, 1, "first section must be [net]"),
    ("unclosed bracket", NET + "[convolutional\nfilters=2\n", 5, "unclosed '['"),
    ("unknown section", NET + "[convolution]\nfilters=2\n", 5, "unknown section [convolution]"),
    ("no equals", NET + CONV + "batchnorm\n", 10, "no '='"),
    ("empty value", NET + "[convolutional]\nfilters=\n", 6, "empty value for 'filters'"),
    ("not a number", NET + "[convolutional]\nfilters=many\n", 6, "expected an integer"),
    ("zero size", NET + "[convolutional]\nsize=0\n", 6, "size=0: must be positive"),
    ("negative filters", NET + "[convolutional]\nfilters=-4\n", 6, "filters=-4: must be positive"),
    ("zero stride", NET + "[maxpool]\nstride=0\n", 6, "stride=0: must be positive"),
    ("route out of range", NET + CONV + "[route]\nlayers=-5\n", 11, "before the first layer"),
    ("route forward", NET + CONV + "[route]\nlayers=3\n", 11, "a later layer"),
    ("shortcut forward", NET + CONV + "[shortcut]\nfrom=1\n", 11, "a later layer"),
    ("groups", NET + "[convolutional]\nfilters=4\ngroups=2\n", 7, "groups=2 must divide"),
    (
        "mask beyond anchors",
        NET + "[convolutional]\nfilters=14\nsize=1\n[yolo]\nclasses=2\nnum=2\nmask=0,5\n",
        11,
        "mask index 5",
    ),
    ("no input size", "[net]\nwidth=16\nheight=16\n" + CONV, 1, "no input size"),
    ("empty file", "", 0, "empty cfg"),
    ("whitespace only", "  \n\n", 0, "empty cfg"),
    (
        "unsupported option",
        NET + CONV + "dontload=1\n",
        10,
        "'dontload' of [convolutional] is not supported",
    ),
    ("unsupported section", NET + "[iseg]\n", 5, "[iseg] is not supported"),
    ("trailing text after header", NET + "[maxpool] 2\n", 5, "after the section header"),
    ("key missing", NET + "=3\n", 5, "without a key"),
    ("yolo filters mismatch", NET + CONV + "[yolo]\nclasses=2\nnum=1\n", 11, "expects 1*(7)"),
    ("second net", NET + NET, 5, "a second [net]"),
    ("no layers", NET, 1, "no layers"),
]


@pytest.mark.parametrize("case, text, line, fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_cfg_raises_positioned_error(case, text, line, fragment):
    with pytest.raises(CfgError) as info:
        parse_network(text, "bad.cfg")
    err = info.value
    assert fragment in err.message
    head = err.headline()
    assert head.startswith("bad.cfg")
    if line:
        assert re.match(rf"bad\.cfg:{line}(:\d+)?: ", head), head


@pytest.mark.parametrize("case, text, line, fragment", BAD, ids=[b[0] for b in BAD])
def test_cli_prints_one_message_and_exits_2(tmp_path, case, text, line, fragment, capsys):
    path = tmp_path / "bad.cfg"
    path.write_text(text)
    with pytest.raises(SystemExit) as info:
        main(["build", str(path), "--summary"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}")
    assert fragment in err.splitlines()[0]
    assert "Traceback" not in err


def test_binary_file_is_rejected(tmp_path):
    path = tmp_path / "model.cfg"
    path.write_bytes(b"\x00\x01\x02darknet\xff")
    result = CliRunner().invoke(cli, ["build", str(path), "--summary"])
    assert isinstance(result.exception, DarkconvError)
    assert "binary file" in str(result.exception)


def test_missing_file_names_the_file():
    with pytest.raises(CfgError, match="no such cfg file"):
        from darkconv.parse.graph import load_network

        load_network("/nonexistent/x.cfg")


def test_error_shows_the_line_and_a_caret():
    with pytest.raises(CfgError) as info:
        parse_network(NET + "[convolutional]\nsize=0\n", "c.cfg")
    lines = str(info.value).splitlines()
    assert lines[1].strip() == "size=0"
    assert lines[2].index("^") == lines[1].index("0")


REAL = [
    (CFG_DIR / f"{n}.cfg").read_bytes()
    for n in ("yolov3-tiny", "darknet19", "rnn", "yolov2", "yolov1")
]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(REAL)))
    lines = data.split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "drop", "dup", "swap"]))
        if op == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
            lines = data.split(b"\n")
        elif op == "drop" and lines:
            del lines[draw(st.integers(0, len(lines) - 1))]
            data = bytearray(b"\n".join(lines))
        elif op == "dup" and lines:
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            data = bytearray(b"\n".join(lines))
        elif op == "swap" and len(lines) > 1:
            i = draw(st.integers(0, len(lines) - 2))
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_real_cfgs_raise_only_darkconv_errors(data):
    try:
        net = parse_network(data, "m.cfg")
    except DarkconvError as err:
        assert err.headline().startswith("m.cfg")
    else:
        assert net.layers


@pytest.mark.parametrize("dialect", ["pjreddie", "alexeyab"])
def test_reorg_stride_must_divide_the_input(dialect: str) -> None:
    """reorg_cpu walks the whole input and writes past l.output when the stride does not divide
    the input size: refused with the layer and option, in both dialects (and at any --size)."""
    from darkconv.errors import GraphError
    from darkconv.parse import parse_network

    text = "[net]\nwidth=23\nheight=17\nchannels=4\n\n[reorg]\nstride=2\n"
    with pytest.raises(
        GraphError, match=r"layer 0 \[reorg\]: stride=2 must divide the input 23x17"
    ):
        parse_network(text, "r.cfg", dialect=dialect)
    parse_network(
        text.replace("width=23", "width=22").replace("height=17", "height=16"), dialect=dialect
    )
