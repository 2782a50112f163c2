"""The `tuner` command: thin typer commands over tuner's API, and nothing of their own.

Exit status 0: done; 1: the sweep or the cluster failed; 2: bad input (one line naming
the file, key and problem); 130: interrupted. Commands import Ray, MLflow and torch
only when they run, so `tuner --help`, `--version` and `validate` stay instant.
May import every other package of tuner.
"""

from __future__ import annotations

import logging
import os
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
app.command()(sweeps.sync)
app.command()(sweeps.report)
app.command()(remote.submit)
app.command()(remote.status)
app.command()(remote.logs)
app.command()(remote.stop)
app.command("preemption-watch")(remote.preemption_watch)


def main() -> None:
    try:
        app(prog_name="tuner")  # as a console script, typer ends with SystemExit
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
        if _untold_interrupt(exc):
            sys.stderr.write("error: interrupted\n")
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        code = 130
    _exit_now(code)


def _untold_interrupt(exc: SystemExit) -> bool:
    """Whether typer ended the command for a Ctrl-C that no command took (one in its
    imports, say): typer turns it into a silent exit 130, `Exit(130) from` the
    interrupt. A command's own `fail()` raised its Exit after saying why."""
    return isinstance(getattr(exc.__context__, "__cause__", None), KeyboardInterrupt)


def _exit_now(code: int | str | None) -> None:
    """End the process without Python's finalization.

    Tearing down torch, Ray and MLflow module by module took 1.5 s on 2 cores after the
    last line was printed, with nothing of ours left to do: by now every MLflow run is
    ended, the tracking writer has flushed and stopped, and Ray is shut down.
    """
    if isinstance(code, str):  # SystemExit("message"): Python prints it and exits 1
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
