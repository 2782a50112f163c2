"""`python -m tuner.cli`: the same command as `tuner`."""

from tuner.cli import main

main()
