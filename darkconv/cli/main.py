"""The ``darkconv`` command: a thin click group over the library.

``main()`` is the one place where library errors become messages and exit codes:
a :class:`~darkconv.errors.DarkconvError` prints ``error: path:line:col: message``
(plus the offending line and a caret where known) and exits 2, never a traceback.
Commands import torch only when they need it, so parse-side commands stay fast.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import NoReturn

import click

from darkconv import __version__
from darkconv.cli.apps import detect_command, predict_command
from darkconv.cli.bench import bench as bench_command
from darkconv.cli.build import build as build_command
from darkconv.cli.export import export_command
from darkconv.cli.map import map_command
from darkconv.cli.process import keep_freed_memory
from darkconv.cli.run import run_command, verify_command
from darkconv.cli.train import train as train_command
from darkconv.cli.weights import weights as weights_command
from darkconv.errors import DarkconvError, ResourceError, is_out_of_memory

__all__ = ["main", "cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="darkconv")
def cli() -> None:
    """Darknet .cfg and .weights files as first-class PyTorch."""
    keep_freed_memory()  # glibc: no page faults on every forward (darkconv/cli/process.py)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    click.echo(f"warning: {message}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the group, turning library errors into one message.

    Warnings (Python ``warnings`` from the library) print as ``warning: ...`` lines."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        _run(argv)


def _run(argv: list[str] | None) -> None:
    try:
        # standalone_mode=False returns a command's exit code instead of raising SystemExit.
        code = cli.main(args=argv, prog_name="darkconv", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except DarkconvError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            _internal(exc)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        click.echo(f"error: out of memory: {first}", err=True)
        sys.exit(ResourceError.exit_code)
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        click.echo(f"error: {where}{exc.strerror or exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # a bug in darkconv: say so in one line unless debugging
        _internal(exc)
    sys.exit(code if isinstance(code, int) else 0)


def _internal(exc: Exception) -> NoReturn:
    if os.environ.get("DARKCONV_DEBUG"):
        raise exc
    click.echo(
        f"internal error: {type(exc).__name__}: {exc} (set DARKCONV_DEBUG=1 for a traceback)",
        err=True,
    )
    sys.exit(70)


for _command in (
    build_command,
    weights_command,
    run_command,
    verify_command,
    predict_command,
    detect_command,
    bench_command,
    train_command,
    map_command,
    export_command,
):
    cli.add_command(_command)
