"""The lexer rules of Darknet's read_cfg(), and where darkconv is deliberately kinder."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from darkconv.parse.cfg import parse_cfg
from darkconv.parse.graph import parse_network

BASE = "[net]\nwidth=8\nheight=6\nchannels=3\n"


def test_whitespace_anywhere_in_a_line_is_ignored():
    doc = parse_cfg(" [ net ]\n fil ters = 1 6 \n\twidth\t=\t8\n")
    assert doc.sections[0].name == "net"
    assert [(o.key, o.value) for o in doc.sections[0].options] == [
        ("filters", "16"),
        ("width", "8"),
    ]


def test_comment_lines_only_at_line_start():
    doc = parse_cfg("[net]\n# a comment\n  ; another\nwidth=8 # not a comment\n")
    assert [(o.key, o.value) for o in doc.sections[0].options] == [("width", "8#notacomment")]


def test_first_duplicate_key_wins_with_a_warning():
    net = parse_network(BASE + "[convolutional]\nfilters=4\nfilters=9\nsize=1\n", "d.cfg")
    assert net.layers[0].options["filters"] == 4
    assert any("duplicate option 'filters'" in w and "d.cfg:7" in w for w in net.warnings)


def test_trailing_text_after_a_number_reads_like_atoi():
    net = parse_network(BASE + "[convolutional]\nfilters=16#x\nsize=3x\n", "t.cfg")
    assert net.layers[0].options["filters"] == 16
    assert net.layers[0].options["size"] == 3
    assert sum("trailing" in w for w in net.warnings) == 2


def test_unknown_activation_falls_back_to_relu():
    net = parse_network(BASE + "[convolutional]\nactivation=leaky#x\n", "a.cfg")
    assert net.layers[0].options["activation"] == "relu"
    assert any("unknown activation" in w for w in net.warnings)


def test_default_activation_is_logistic():
    net = parse_network(BASE + "[convolutional]\nfilters=2\n", "a.cfg")
    assert net.layers[0].options["activation"] == "logistic"


def test_crlf_and_bom_are_accepted():
    text = (BASE + "[convolutional]\nfilters=2\nsize=3\npad=1\n").replace("\n", "\r\n")
    ref = parse_network(BASE + "[convolutional]\nfilters=2\nsize=3\npad=1\n", "x.cfg")
    assert parse_network(text, "x.cfg") == ref
    assert parse_network(b"\xef\xbb\xbf" + text.encode(), "x.cfg") == ref


def test_aliases_resolve_like_the_fixture(fixtures_dir=FIXTURES):
    net = parse_network((FIXTURES / "layers/conv_aliases_syntax/case.cfg").read_text(), "c.cfg")
    import json

    manifest = json.loads((FIXTURES / "layers/conv_aliases_syntax/manifest.json").read_text())
    assert [la.type for la in net.layers] == [la["type"] for la in manifest["layers"]]


def test_unused_and_training_options_are_reported_not_fatal():
    net = parse_network(
        BASE + "[convolutional]\nfilters=6\nsize=1\nbogus=1\n[yolo]\nclasses=1\nnum=1\njitter=.3\n",
        "u.cfg",
    )
    assert net.layers[0].unused == ("bogus",)
    assert any("unused field 'bogus'" in w for w in net.warnings)


@pytest.mark.parametrize("pad, padding, expected", [(1, 0, 1), (0, 2, 2), (1, 5, 1), (0, 0, 0)])
def test_conv_pad_flag_overrides_padding(pad, padding, expected):
    net = parse_network(BASE + f"[convolutional]\nsize=3\npad={pad}\npadding={padding}\n", "p.cfg")
    assert net.layers[0].options["padding"] == expected
    assert net.layers[0].output[1] == 6 + 2 * expected - 3 + 1
