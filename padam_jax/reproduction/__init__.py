"""The reproduction of Chen & Gu's experiments: suites of sweeps, their report,
the claims judged over seeds, and the statistics behind the verdicts.

Import the submodules explicitly (``from padam_jax.reproduction import suites``).
"""
