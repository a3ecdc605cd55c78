"""padam-jax: the Padam optimizer for JAX/Optax, with PyTorch-convention baselines.

Only the optimizer is imported here (it needs jax, optax and chex alone); the
training stack lives in ``padam_jax.models``, ``padam_jax.data`` and
``padam_jax.train``, imported on demand.
"""

from padam_jax.alias import (OPTIMIZERS, adam, adamw, amsgrad, get_optimizer,
                             padam, padamw, sgdm)
from padam_jax.transform import (ScaleByPadamState, fractional_power,
                                 scale_by_amsgrad_torch, scale_by_padam)

__version__ = '0.1.0'

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
