"""Ready-made optimizers (Padam and the paper's baselines) with PyTorch conventions.

Every optimizer here is an ``optax.chain`` of small pieces and matches its PyTorch
counterpart (the authors' ``Padam``, ``torch.optim.SGD``/``Adam``/``AdamW``) to
round-off in float64. ``OPTIMIZERS`` maps names to factories.

Annotations are evaluated (no ``from __future__ import annotations``): optax's
shared optimizer tests read ``learning_rate: ScalarOrSchedule`` from the signature
to decide whether an optimizer takes a schedule.
"""

from collections.abc import Callable
from typing import Any

import jax
import optax

from padam_jax.transform import (
  ScalarOrSchedule,
  check_hyperparameter,
  check_non_negative,
  real_hyperparameter,
  scale_by_amsgrad_torch,
  scale_by_padam,
)

MaskOrFn = Any | None


def _weight_decay(weight_decay, mask: MaskOrFn) -> optax.GradientTransformation:
  """Adds ``weight_decay * params`` to the updates on the leaves ``mask`` selects.

  Placed before the moments it is PyTorch's coupled L2 (``weight_decay=``), after
  them it is AdamW's decoupled decay.
  """
  weight_decay = real_hyperparameter(weight_decay)
  check_non_negative('weight_decay', weight_decay)
  if isinstance(weight_decay, (int, float)) and weight_decay == 0:
    return optax.identity()  # so that update() needs no params without decay
  return optax.add_decayed_weights(weight_decay, mask)


def _keep_dtypes(
  tx: optax.GradientTransformationExtraArgs,
) -> optax.GradientTransformationExtraArgs:
  """``tx`` with its updates in the incoming dtypes and its state in the previous ones.

  A no-op with Python-number hyperparameters. ``optax.inject_hyperparams`` makes them
  arrays of the parameters' widest dtype, which would promote narrower leaves (bfloat16
  beside float32) and change the state's dtypes from one step to the next.
  """

  def update_fn(updates, state, params=None, **extra_args):
    new_updates, new_state = tx.update(updates, state, params, **extra_args)
    like = lambda new, old: new.astype(old.dtype)  # noqa: E731
    return jax.tree.map(like, new_updates, updates), jax.tree.map(like, new_state, state)

  return optax.GradientTransformationExtraArgs(tx.init, update_fn)


def _assemble(
  scaling: optax.GradientTransformation,
  learning_rate: ScalarOrSchedule,
  weight_decay,
  mask: MaskOrFn,
  *,
  decoupled: bool,
) -> optax.GradientTransformation:
  """``decay -> scaling -> -lr`` (coupled L2) or ``scaling -> decay -> -lr`` (decoupled)."""
  learning_rate = real_hyperparameter(learning_rate)
  check_non_negative('learning_rate', learning_rate)
  decay = _weight_decay(weight_decay, mask)
  steps = (scaling, decay) if decoupled else (decay, scaling)
  return _keep_dtypes(optax.chain(*steps, optax.scale_by_learning_rate(learning_rate)))


def padam(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  partial: ScalarOrSchedule = 0.125,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  *,
  amsgrad: bool = True,
  exact_bias_correction: bool = False,
  mu_dtype: Any | None = None,
  mask: MaskOrFn = None,
) -> optax.GradientTransformation:
  """Padam (Chen & Gu, arXiv:1806.06763) exactly as the authors' PyTorch code.

  ``chain(coupled L2, scale_by_padam, -learning_rate)``: the weight decay is added
  to the gradient before the moments, as in the reference, on every leaf that
  ``mask`` selects (all by default). ``learning_rate`` and ``partial`` accept a
  number or an optax schedule; all numbers work under ``optax.inject_hyperparams``.

  Example:
    >>> import jax.numpy as jnp, padam_jax
    >>> tx = padam_jax.padam(0.1, partial=0.125, weight_decay=5e-4)
    >>> params = {'w': jnp.ones(3)}
    >>> updates, state = tx.update({'w': jnp.ones(3)}, tx.init(params), params)

  See :func:`padam_jax.scale_by_padam` for the update and the options.
  """
  scaling = scale_by_padam(
    b1, b2, partial, eps, amsgrad, exact_bias_correction=exact_bias_correction, mu_dtype=mu_dtype
  )
  return _assemble(scaling, learning_rate, weight_decay, mask, decoupled=False)


def padamw(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  partial: ScalarOrSchedule = 0.125,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  *,
  amsgrad: bool = True,
  exact_bias_correction: bool = False,
  mu_dtype: Any | None = None,
  mask: MaskOrFn = None,
) -> optax.GradientTransformation:
  """Padam with decoupled weight decay: ``theta -= lr * (padam_dir + wd * theta)``.

  The decay bypasses the partially adaptive scaling (as ``torch.optim.AdamW``),
  so it acts with the same strength on every coordinate.
  """
  scaling = scale_by_padam(
    b1, b2, partial, eps, amsgrad, exact_bias_correction=exact_bias_correction, mu_dtype=mu_dtype
  )
  return _assemble(scaling, learning_rate, weight_decay, mask, decoupled=True)


def sgdm(
  learning_rate: ScalarOrSchedule,
  momentum: float = 0.9,
  weight_decay: float = 0.0,
  *,
  nesterov: bool = False,
  mask: MaskOrFn = None,
) -> optax.GradientTransformation:
  """SGD with momentum as ``torch.optim.SGD``: ``buf = momentum * buf + g``."""
  momentum = real_hyperparameter(momentum)
  check_hyperparameter('momentum', momentum, 0.0, 1.0, high_inclusive=False)
  return _assemble(
    optax.trace(decay=momentum, nesterov=nesterov),
    learning_rate,
    weight_decay,
    mask,
    decoupled=False,
  )


def adam(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  *,
  mu_dtype: Any | None = None,
  mask: MaskOrFn = None,
) -> optax.GradientTransformation:
  """Adam as ``torch.optim.Adam`` (coupled L2 weight decay)."""
  return _assemble(
    scale_by_amsgrad_torch(b1, b2, eps, amsgrad=False, mu_dtype=mu_dtype),
    learning_rate,
    weight_decay,
    mask,
    decoupled=False,
  )


def amsgrad(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  *,
  mu_dtype: Any | None = None,
  mask: MaskOrFn = None,
) -> optax.GradientTransformation:
  """AMSGrad as ``torch.optim.Adam(amsgrad=True)``: maximum of the raw ``nu``."""
  return _assemble(
    scale_by_amsgrad_torch(b1, b2, eps, amsgrad=True, mu_dtype=mu_dtype),
    learning_rate,
    weight_decay,
    mask,
    decoupled=False,
  )


def adamw(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.01,
  *,
  mu_dtype: Any | None = None,
  mask: MaskOrFn = None,
) -> optax.GradientTransformation:
  """AdamW as ``torch.optim.AdamW``: ``theta -= lr * (adam_dir + wd * theta)``."""
  return _assemble(
    scale_by_amsgrad_torch(b1, b2, eps, amsgrad=False, mu_dtype=mu_dtype),
    learning_rate,
    weight_decay,
    mask,
    decoupled=True,
  )


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
  'padam': padam,
  'padamw': padamw,
  'sgdm': sgdm,
  'adam': adam,
  'amsgrad': amsgrad,
  'adamw': adamw,
}


def get_optimizer(name: str, **hyperparameters: Any) -> optax.GradientTransformation:
  """Builds the optimizer registered as ``name`` (see ``OPTIMIZERS``)."""
  try:
    factory = OPTIMIZERS[name]
  except KeyError:
    raise ValueError(
      f'unknown optimizer {name!r}; choose one of {", ".join(sorted(OPTIMIZERS))}'
    ) from None
  return factory(**hyperparameters)
