"""The PyTorch twin of each of our optimizers, as a ``make_optimizer(params)`` factory.

``padam`` -> the re-written authors' Padam (:mod:`padam_jax.reference.optim`), ``padamw``
-> ``pytorch_optimizer.PAdam(weight_decouple=True)`` (which has no maximum: ours runs with
``amsgrad=False`` beside it), ``sgdm`` -> ``SGD(momentum=0.9)``, ``adam``/``amsgrad`` ->
``Adam(amsgrad=...)``, ``adamw`` -> ``AdamW``. torch is imported when an optimizer is made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The authors' Padam's hyperparameters, by the names of its settings (a setting gives any).
PADAM_DEFAULTS: dict[str, Any] = dict(
  lr=0.1,
  b1=0.9,
  b2=0.999,
  eps=1e-8,
  weight_decay=0.0,
  partial=0.125,
  amsgrad=True,
  exact_bias_correction=False,
)
OPTIMIZERS = ('padam', 'padamw', 'sgdm', 'adam', 'amsgrad', 'adamw')

MakeOptimizer = Callable[[list], Any]


def torch_reference_padam(setting: dict[str, Any]) -> MakeOptimizer:
  """A ``make_optimizer`` for the re-written authors' Padam under ``setting``
  (``PADAM_DEFAULTS`` for the hyperparameters it leaves out)."""
  s = {**PADAM_DEFAULTS, **setting}

  def make(params):
    from padam_jax.reference import optim  # pylint: disable=import-outside-toplevel

    return optim.Padam(
      params,
      lr=s['lr'],
      betas=(s['b1'], s['b2']),
      eps=s['eps'],
      weight_decay=s['weight_decay'],
      amsgrad=s['amsgrad'],
      partial=s['partial'],
      exact_bias_correction=s['exact_bias_correction'],
    )

  return make


def torch_optim(name: str, **kwargs: Any) -> MakeOptimizer:
  """A ``make_optimizer`` for ``torch.optim.<name>(params, **kwargs)``."""

  def make(params):
    import torch  # pylint: disable=import-outside-toplevel

    return getattr(torch.optim, name)(params, **kwargs)

  return make


def pytorch_optimizer_padam(**kwargs: Any) -> MakeOptimizer:
  """A ``make_optimizer`` for ``pytorch_optimizer.PAdam(params, **kwargs)``."""

  def make(params):
    from pytorch_optimizer import PAdam  # pylint: disable=import-outside-toplevel

    return PAdam(params, foreach=False, **kwargs)

  return make


def torch_twin(
  name: str, learning_rate: float, weight_decay: float, partial: float = 0.125
) -> MakeOptimizer:
  """The ``make_optimizer`` of our optimizer ``name``'s twin (see the module doc): coupled
  weight decay on every parameter except for ``padamw`` and ``adamw``; ``partial`` is used
  by the Padam pair."""
  lr, wd = learning_rate, weight_decay
  if name == 'padam':
    return torch_reference_padam(dict(lr=lr, partial=partial, weight_decay=wd))
  if name == 'padamw':
    return pytorch_optimizer_padam(lr=lr, partial=partial, weight_decay=wd, weight_decouple=True)
  if name == 'sgdm':
    return torch_optim('SGD', lr=lr, momentum=0.9, weight_decay=wd)
  if name in ('adam', 'amsgrad'):
    return torch_optim('Adam', lr=lr, weight_decay=wd, amsgrad=name == 'amsgrad')
  if name == 'adamw':
    return torch_optim('AdamW', lr=lr, weight_decay=wd)
  raise ValueError(f'unknown optimizer {name!r}; choose one of {", ".join(sorted(OPTIMIZERS))}')
