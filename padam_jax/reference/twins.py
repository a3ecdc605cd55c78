"""The PyTorch twin of each of our optimizers, as a ``make_optimizer(params)`` factory.

``TWINS`` holds them by name; each entry of ``padam_jax.alias.REGISTRY`` names its twin:
``padam`` the re-written authors' Padam (:mod:`padam_jax.reference.optim`), ``padamw``
``pytorch_optimizer.PAdam(weight_decouple=True)`` (which has no maximum: ours runs with
``amsgrad=False`` beside it), ``sgdm`` ``SGD(momentum=0.9)``, ``adam``/``amsgrad``
``Adam(amsgrad=...)``, ``adamw`` ``AdamW``. torch is imported when an optimizer is made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from padam_jax import alias

if TYPE_CHECKING:
  import torch

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
MakeOptimizer = Callable[[list], Any]


def torch_reference_padam(setting: dict[str, Any]) -> MakeOptimizer:
  """A ``make_optimizer`` for the re-written authors' Padam under ``setting``
  (``PADAM_DEFAULTS`` for the hyperparameters it leaves out)."""
  s = {**PADAM_DEFAULTS, **setting}

  def make(params: list) -> torch.optim.Optimizer:
    from padam_jax.reference import optim

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

  def make(params: list) -> torch.optim.Optimizer:
    import torch

    return getattr(torch.optim, name)(params, **kwargs)

  return make


def pytorch_optimizer_padam(**kwargs: Any) -> MakeOptimizer:
  """A ``make_optimizer`` for ``pytorch_optimizer.PAdam(params, **kwargs)``."""

  def make(params: list) -> torch.optim.Optimizer:
    from pytorch_optimizer import PAdam

    return PAdam(params, foreach=False, **kwargs)

  return make


@dataclasses.dataclass(frozen=True)
class Twin:
  """A PyTorch optimizer that one of ours matches.

  Attributes:
    make: ``make(learning_rate, weight_decay, partial)``, its ``make_optimizer`` (weight
      decay coupled or decoupled as ours; ``partial`` used by the Padam pair alone).
    ours: Our factory's arguments, beyond those three, under which it matches the twin
      (empty where its defaults do).
    mismatch: Where ``ours`` is not empty, what differs under our defaults.
  """

  make: Callable[[float, float, float], MakeOptimizer]
  ours: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  mismatch: str = ''


TWINS: dict[str, Twin] = {
  'reference.optim.Padam': Twin(
    lambda lr, wd, p: torch_reference_padam(dict(lr=lr, partial=p, weight_decay=wd))
  ),
  'pytorch_optimizer.PAdam(weight_decouple)': Twin(
    lambda lr, wd, p: pytorch_optimizer_padam(
      lr=lr, partial=p, weight_decay=wd, weight_decouple=True
    ),
    ours=dict(amsgrad=False),
    mismatch='the twin has no maximum of the second moment',
  ),
  'torch.optim.SGD(momentum=0.9)': Twin(
    lambda lr, wd, p: torch_optim('SGD', lr=lr, momentum=0.9, weight_decay=wd)
  ),
  'torch.optim.Adam': Twin(lambda lr, wd, p: torch_optim('Adam', lr=lr, weight_decay=wd)),
  'torch.optim.Adam(amsgrad=True)': Twin(
    lambda lr, wd, p: torch_optim('Adam', lr=lr, weight_decay=wd, amsgrad=True)
  ),
  'torch.optim.AdamW': Twin(lambda lr, wd, p: torch_optim('AdamW', lr=lr, weight_decay=wd)),
}


def twin_of(name: str) -> Twin:
  """The twin of our optimizer ``name`` (``ValueError`` for a name not registered)."""
  return TWINS[alias.registered(name).twin]


def torch_twin(
  name: str, learning_rate: float, weight_decay: float, partial: float = 0.125
) -> MakeOptimizer:
  """The ``make_optimizer`` of our optimizer ``name``'s twin (see ``TWINS``)."""
  return twin_of(name).make(learning_rate, weight_decay, partial)
