"""Sweeps on a Ray cluster: the Jobs API commands and the spot preemption watcher.

Owns submitting a sweep's driver to the head node, listing, following and stopping its
jobs, and `tuner preemption-watch`, which drains a spot worker's Ray node when EC2
announces an interruption. May import spec, tracking and engine (token auth).
"""
