"""`python -m tuner.cli`: the same command as `tuner`."""

from tuner.entry import main

main()
