"""Benchmarks and profilers (``python -m benchmarks.<name>``): they measure, print ratios
measured in one run, and are never imported by the library or the launchers."""
