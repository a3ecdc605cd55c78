"""The reproduction of Chen & Gu's experiments: suites of sweeps, the plans that train
them, their report, and the claims judged over seeds (by ``padam_jax.stats``).

Import the submodules explicitly (``from padam_jax.reproduction import suites``).
"""
