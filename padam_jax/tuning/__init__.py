"""Tuning at equal budgets: search spaces fixed in advance and their quasi-random trials
(``search``), and choosing a winner on held-out data (``selection``).

Import the submodules explicitly (``from padam_jax.tuning import search``); ``search``
needs scipy (the ``train`` extra).
"""
