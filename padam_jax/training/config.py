"""Run configuration: one frozen dataclass, the presets, and the optimizer it implies.

``TrainConfig`` fields left as ``None`` take the preset's value or, for the
learning rate, the per-optimizer default of the seed's Table 1; ``resolve``
fills them in and validates everything, so a bad value fails before any work.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Optional

import optax

from padam_jax import alias, schedules
from padam_jax.transform import check_hyperparameter, check_non_negative

# The seed's Table 1 (betas 0.9/0.999 and momentum 0.9 are the factories' defaults).
DEFAULT_LEARNING_RATES = {
    'padam': 0.1, 'padamw': 0.1, 'sgdm': 0.1,
    'adam': 1e-3, 'amsgrad': 1e-3, 'adamw': 1e-3,
}
DEFAULT_PARTIAL = 0.125

PRESETS: dict[str, dict[str, Any]] = {
    # The seed: its Table 1 (weight decay 0.005), constant learning rate, 100 epochs.
    'seed': dict(weight_decay=0.005, lr_schedule='constant', epochs=100),
    # The authors' scripts: weight decay 5e-4, 200 epochs, x0.1 at epochs 100 and 150.
    'paper': dict(weight_decay=5e-4, lr_schedule='multistep', epochs=200),
}
LR_SCHEDULES = ('constant', 'multistep', 'warmup')
PRESET_HELP = ('seed: weight decay 0.005, constant lr, 100 epochs (the seed\'s Table 1); '
               'paper: weight decay 5e-4, x0.1 at 50%/75% of the epochs, 200 epochs '
               '(the authors\' scripts).')
COMPUTE_DTYPES = ('float32', 'bfloat16')
_PADAM_FAMILY = ('padam', 'padamw')


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything a training run depends on (``None``: preset or default)."""

  model: str = 'resnet18'
  width: float = 1.0
  dataset: str = 'cifar10'
  data_dir: Optional[str] = None
  optimizer: str = 'padam'
  preset: str = 'seed'
  learning_rate: Optional[float] = None
  lr_start: Optional[float] = None
  partial: Optional[float] = None
  partial_end: Optional[float] = None
  weight_decay: Optional[float] = None
  momentum: float = 0.9
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  epochs: Optional[int] = None
  batch_size: int = 128
  eval_batch_size: int = 100
  lr_schedule: Optional[str] = None
  drop_remainder: bool = False
  seed: int = 0
  compute_dtype: str = 'float32'
  train_size: Optional[int] = None
  test_size: Optional[int] = None

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def schedules_depend_on_epochs(self) -> bool:
    """Whether the learning-rate or p schedule is laid out over ``epochs``."""
    return self.lr_schedule in ('multistep', 'warmup') or self.partial_end is not None


def _choice(name: str, value: str, choices) -> None:
  if value not in choices:
    raise ValueError(f'unknown {name} {value!r}; choose one of '
                     f'{", ".join(sorted(choices))}')


def resolve(config: TrainConfig) -> TrainConfig:
  """Fills ``None`` fields from the preset and defaults, and validates."""
  from padam_jax.data import DATASETS  # pylint: disable=import-outside-toplevel
  from padam_jax.models import MODELS  # pylint: disable=import-outside-toplevel

  _choice('preset', config.preset, PRESETS)
  _choice('model', config.model, MODELS)
  _choice('dataset', config.dataset, DATASETS)
  _choice('optimizer', config.optimizer, alias.OPTIMIZERS)
  _choice('compute_dtype', config.compute_dtype, COMPUTE_DTYPES)
  filled = {k: v for k, v in PRESETS[config.preset].items()
            if getattr(config, k) is None}
  if config.learning_rate is None:
    filled['learning_rate'] = DEFAULT_LEARNING_RATES[config.optimizer]
  if config.optimizer in _PADAM_FAMILY and config.partial is None:
    filled['partial'] = DEFAULT_PARTIAL
  config = dataclasses.replace(config, **filled)
  _choice('lr_schedule', config.lr_schedule, LR_SCHEDULES)
  if config.optimizer not in _PADAM_FAMILY and (
      config.partial is not None or config.partial_end is not None):
    raise ValueError(f'partial/partial_end apply only to padam and padamw, '
                     f'not {config.optimizer!r}')
  for name in ('epochs', 'batch_size', 'eval_batch_size', 'train_size', 'test_size'):
    value = getattr(config, name)
    if value is not None and value < 1:
      raise ValueError(f'{name} must be >= 1, got {value}')
  if (config.lr_start is None) != (config.lr_schedule != 'warmup'):
    raise ValueError('lr_start is required by lr_schedule warmup and used by no other '
                     f'schedule (lr_schedule {config.lr_schedule!r}, lr_start '
                     f'{config.lr_start!r})')
  if not config.width > 0:
    raise ValueError(f'width must be > 0, got {config.width}')
  make_optimizer(config, steps_per_epoch=1)  # validates the hyperparameters
  return config


def make_optimizer(config: TrainConfig, steps_per_epoch: int
                   ) -> tuple[optax.GradientTransformation, Callable, Optional[Callable]]:
  """The optimizer of a resolved config, its learning-rate and p schedules.

  Returns ``(tx, learning_rate(step), partial(step) or None)``.
  """
  total_steps = config.epochs * steps_per_epoch
  check_non_negative('learning_rate', config.learning_rate)
  check_non_negative('lr_start', config.lr_start)
  for name in ('partial', 'partial_end'):
    check_hyperparameter(name, getattr(config, name), 0.0, 0.5, high_inclusive=True)
  if config.lr_schedule == 'multistep':
    learning_rate = schedules.multistep(config.learning_rate, total_steps)
  elif config.lr_schedule == 'warmup':
    learning_rate = schedules.linear(config.lr_start, config.learning_rate, total_steps)
  else:
    learning_rate = optax.constant_schedule(config.learning_rate)
  partial = None
  if config.optimizer in _PADAM_FAMILY:
    partial = (optax.constant_schedule(config.partial)
               if config.partial_end is None
               else schedules.linear(config.partial, config.partial_end, total_steps))
  candidates = dict(learning_rate=learning_rate, partial=partial,
                    weight_decay=config.weight_decay, momentum=config.momentum,
                    b1=config.b1, b2=config.b2, eps=config.eps)
  factory = alias.OPTIMIZERS[config.optimizer]
  accepted = inspect.signature(factory).parameters
  kwargs = {k: v for k, v in candidates.items() if k in accepted}
  return factory(**kwargs), learning_rate, partial
