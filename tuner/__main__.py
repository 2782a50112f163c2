"""`python -m tuner`: the same command as `tuner`."""

from tuner.cli import main

main()
