"""A run directory's persistence (the ``train`` extra): Orbax checkpoints (``checkpoint``),
``config.json`` and ``metrics.jsonl`` (``runlog``), TensorBoard summaries (``summaries``),
what stops a run on purpose and how it is told (``faults``), and the one-process lock
(``lock``).

Import the submodules explicitly (``from padam_jax.rundir import runlog``).
"""
