"""Memory estimates from the graph (no torch), checked by arithmetic on known cfgs."""

from __future__ import annotations

import pytest

from darkconv.errors import ResourceError
from darkconv.parse import load_network, parse_network
from darkconv.parse.budget import (
    Cost,
    activation_cost,
    available_bytes,
    check_fits,
    human_bytes,
    outputs_cost,
    parameter_cost,
)

NET = "[net]\nwidth={w}\nheight={h}\nchannels=3\n\n"
CONV = "[convolutional]\nfilters={n}\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n"


def test_parameter_cost_is_four_bytes_per_stored_value() -> None:
    net = load_network("yolov3-tiny")
    cost = parameter_cost(net)
    assert cost.nbytes == 4 * net.params == net.weights_bytes() - 20
    big = max(net.layers, key=lambda la: la.params)
    assert cost.what.startswith(f"layer {big.index} ({big.type}): ")


def test_huge_filters_named() -> None:
    net = parse_network(NET.format(w=32, h=32) + CONV.format(n=2_000_000_000), "big.cfg")
    cost = parameter_cost(net)
    # 2e9 filters x 3x3x3 weights + bias, scale... no BN here: weights + biases
    assert cost.nbytes == 4 * (2_000_000_000 * 27 + 2_000_000_000)
    assert cost.what == "layer 0 (convolutional): 56 G parameters"
    assert human_bytes(cost.nbytes) == "224 GB"


def test_activation_cost_counts_widest_layer_and_kept_outputs() -> None:
    # conv 16 -> conv 8 -> route -2 (keeps layer 0 alive) at 10x10
    text = NET.format(w=10, h=10) + CONV.format(n=16) + CONV.format(n=8) + "[route]\nlayers=-2\n"
    net = parse_network(text)
    # in + out: layer 0 300 + 1600, layer 1 1600 + 800, the route 1600 + 1600 (widest)
    widest = 1600 + 1600
    kept = 1600  # layer 0's output, read again by the route two layers later
    cost = activation_cost(net, 2)
    assert cost.nbytes == (widest + kept) * 2 * 4
    assert cost.what == "layer 2 (route) at batch 2 of 3x10x10"
    assert outputs_cost(net, 1).nbytes == 4 * (300 + 1600 + 800 + 1600)


def test_input_named_when_widest() -> None:
    text = NET.format(w=200000, h=200000) + "[avgpool]\n"
    cost = activation_cost(parse_network(text), 1)
    assert cost.what.startswith("layer 0 (avgpool) at batch 1 of 3x200000x200000")


def test_check_fits() -> None:
    avail, where = available_bytes()
    assert avail is not None and avail > 0 and where
    check_fits(Cost(1 << 20, "small"))  # quietly under the threshold
    with pytest.raises(ResourceError, match=r"^huge: needs 1e\+03 TB; "):
        check_fits(Cost(10**15, "huge"))
