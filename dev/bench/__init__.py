"""Benchmarks: the pure core (core.py) and the worker on a real broker."""
