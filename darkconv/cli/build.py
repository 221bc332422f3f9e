"""``darkconv build``: parse a cfg, print Darknet's layer table, build the torch model."""

from __future__ import annotations

import json

import click

from darkconv.cli.options import device_option, dialect_option, semantics_options, size_option

__all__ = ["build", "echo_warnings", "cpu_zero_warnings"]


def echo_warnings(items) -> None:
    for w in items:
        click.echo(f"warning: {w}", err=True)


def cpu_zero_warnings(network, intended: bool = False) -> list[str]:  # noqa: ANN001 - a Network
    """One line per layer whose activation the dialect's CPU forward turns into 0."""
    who = network.facts.darknet
    what = (
        "darkconv computes the formula instead (--intended-activations)"
        if intended
        else "darkconv does the same; --intended-activations computes the formula"
    )
    return [
        f"layer {i}: {who}'s CPU forward outputs 0 for {act} in [{kind}] "
        f"(activate() has no case for it); {what}"
        for i, kind, act in network.cpu_zero_layers()
    ]


@click.command()
@click.argument("cfg")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the machine-readable summary (no torch)."
)
@click.option(
    "--summary", is_flag=True, help="Print the layer table only; do not build the torch model."
)
@device_option(help="Where to build the model.")
@click.option("--fuse", is_flag=True, help="Fold batch norm into the convolutions after building.")
@click.option(
    "--winograd",
    is_flag=True,
    help="With --fuse: Winograd F(m, 3) for the big 3x3 stride-1 convolutions (implies --fuse).",
)
@dialect_option()
@semantics_options
@size_option()
def build(
    cfg: str,
    as_json: bool,
    summary: bool,
    device: str,
    fuse: bool,
    winograd: bool,
    dialect: str | None,
    intended_activations: bool,
    nofuse: bool,
    size: tuple[int, int] | None,
) -> None:
    """Parse CFG (a path or a shipped name like darknet53) and build the network.

    Prints a Darknet-style table: index, type, filters, size/stride, input -> output,
    BFLOPs, with totals (parameters, BFLOPs, expected .weights bytes).
    """
    from darkconv.parse.graph import load_network
    from darkconv.parse.size import with_size

    network = with_size(load_network(cfg, dialect=dialect), size)
    # The dialect and why go to stderr: stdout keeps the table / JSON contract.
    click.echo(f"dialect: {network.dialect_reason}", err=True)
    echo_warnings(network.warnings)
    echo_warnings(cpu_zero_warnings(network, intended_activations))
    if as_json:
        click.echo(json.dumps(network.summary()))
        return
    from darkconv.parse.summary import format_table

    if summary:
        click.echo(format_table(network))
        return
    from darkconv.nn.builder import build as build_model
    from darkconv.nn.builder import pick_device

    dev = pick_device(device)  # an unusable --device fails before any output
    click.echo(format_table(network))
    model = build_model(
        network, device=dev, intended_activations=intended_activations, nofuse=nofuse
    )
    # Darknet's parameter count is every stored float: weights, biases and BN statistics.
    n = sum(t.numel() for k, t in model.state_dict().items() if k.startswith("layers."))
    click.echo(
        f"built {type(model).__name__} on {dev}: {n:,} stored values (cfg: {network.params:,})"
    )
    if fuse or winograd:
        model.fuse(winograd=winograd)
        click.echo("fused batch norm into the convolutions (Darknet's epsilon)")
    if winograd:
        from darkconv.nn.winograd import WinogradConvolutional

        tiles = [m.tile for m in model.modules() if isinstance(m, WinogradConvolutional)]
        counts = ", ".join(f"{tiles.count(t)} x F({t}x{t}, 3x3)" for t in sorted(set(tiles)))
        click.echo(f"Winograd: {counts or 'no layer qualifies'} (darkconv.winograd.choose_tile)")
