"""The `tuner` command's entry point: a Ctrl-C while the command is still importing
(typer, tuner's commands: a second or more on a loaded machine) ends it in one line.

Python would print a KeyboardInterrupt traceback through whichever import it landed
in and die by SIGINT. This module imports nothing of tuner's but the package itself,
whose `__init__` is kept light for the purpose.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    try:
        from tuner.cli import main as command
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted as it started; nothing was done\n")
        sys.stderr.flush()
        os._exit(130)  # EXIT_INTERRUPTED, without importing tuner.cli.common for it
    command()
