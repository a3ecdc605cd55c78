"""Processes and devices: joining the processes of a multi-host run, which one writes,
barriers and collective timeouts (``hosts``); the mesh and every sharding (``sharding``).

Import the submodules explicitly (``from padam_jax.distributed import hosts``); neither
imports flax, orbax or tensorflow.
"""
