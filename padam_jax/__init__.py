"""padam-jax: the Padam optimizer for JAX/Optax, with PyTorch-convention baselines.

Only the optimizer is imported here (it needs jax, optax and chex alone). Beside it:
``padam_jax.models`` and ``padam_jax.data`` (flax, tensorflow-datasets), the training
stack ``padam_jax.training``, the reproduction of the paper's experiments
``padam_jax.reproduction`` and the PyTorch oracles ``padam_jax.reference``; each is
imported on demand.
"""

from padam_jax.alias import OPTIMIZERS, adam, adamw, amsgrad, get_optimizer, padam, padamw, sgdm
from padam_jax.transform import (
  ScaleByPadamState,
  fractional_power,
  scale_by_amsgrad_torch,
  scale_by_padam,
)

__version__ = '0.1.0'  # the one place the version is written; pyproject.toml reads it

__all__ = [
  'OPTIMIZERS',
  'ScaleByPadamState',
  'adam',
  'adamw',
  'amsgrad',
  'fractional_power',
  'get_optimizer',
  'padam',
  'padamw',
  'scale_by_amsgrad_torch',
  'scale_by_padam',
  'sgdm',
]
