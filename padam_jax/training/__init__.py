"""The training stack (the ``train`` extra): configuration, the train steps, the trainers,
the epoch loop, sweeps, checkpoints, the run log, summaries, fault handling, hosts and
sharding.

Import the submodules explicitly (``from padam_jax.training import loop``); this
package imports none of them, so ``import padam_jax`` stays free of flax and
tensorflow.
"""
