"""`python -m tuner`: the same command as `tuner`."""

from tuner.entry import main

main()
