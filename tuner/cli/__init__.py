"""The `tuner` command: thin typer commands over tuner's API, and nothing of their own.

Exit status 0: done; 1: the sweep or the cluster failed; 2: bad input (one line naming
the file, key and problem); 130: interrupted. Commands import Ray, MLflow and torch
only when they run, so `tuner --help`, `--version` and `validate` stay instant.
May import every other package of tuner.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tuner.cli import remote, sweeps

app = typer.Typer(
    help="Hyperparameter sweeps for PyTorch: Ray Tune + Optuna + ASHA, tracked in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(show: bool) -> None:
    if show:
        from tuner import __version__

        typer.echo(f"tuner {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Hyperparameter sweeps for PyTorch: Ray Tune + Optuna + ASHA, tracked in MLflow."""


app.command()(sweeps.validate)
app.command()(sweeps.run)
app.command()(sweeps.resume)
app.command()(sweeps.best)
app.command()(remote.submit)
app.command()(remote.status)
app.command()(remote.logs)
app.command()(remote.stop)
app.command("preemption-watch")(remote.preemption_watch)


def main() -> None:
    try:
        app(prog_name="tuner")
    except KeyboardInterrupt:
        sys.exit(130)
