"""The training stack (the ``train`` extra): configuration, the train steps, the trainers,
the epoch loop and sweeps. What a run leaves on disk lives in ``padam_jax.rundir``; processes,
devices and shardings in ``padam_jax.distributed``.

Import the submodules explicitly (``from padam_jax.training import loop``); this
package imports none of them, so ``import padam_jax`` stays free of flax and
tensorflow.
"""
