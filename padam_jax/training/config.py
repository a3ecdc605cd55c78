"""Run configuration: one frozen dataclass, the presets, and the optimizer it implies.

``TrainConfig`` fields left as ``None`` take the preset's value or, for the
learning rate, the optimizer's default under the preset (``padam_jax.alias.REGISTRY``:
the reproduction's Table 1); ``resolve`` fills them in and validates everything, so a bad
value fails before any work, with a ``ConfigError`` that names the field, and returns a
``ResolvedConfig``: the same fields, those it fills typed without ``None``. The optimizers,
and which of them uses which field, come from that registry.

Each field also says, in its metadata, what the command line shows of it: its help text,
its choices, what ``None`` stands for, and a short name where the field's own is long
(``lr``). The flags (``experiments.config_flags``), the sweep's grid axes and the docs'
flag table are derived from them, so a new field is one line here. A frozen dataclass
rather than ``ml_collections.ConfigDict``: it stays hashable and typed, needs no
dependency, and its flags stay ``--lr`` rather than ``--config.lr``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

import optax

from padam_jax import alias, schedules
from padam_jax.data import DATASETS
from padam_jax.models import MODELS
from padam_jax.transform import HyperparameterError, check_hyperparameter, check_non_negative

DEFAULT_PARTIAL = 0.125

PRESETS: dict[str, dict[str, Any]] = {
  # The student reproduction: its Table 1 (weight decay 0.005), constant learning rate,
  # 100 epochs.
  'reproduction': dict(weight_decay=0.005, lr_schedule='constant', epochs=100),
  # The authors' scripts: weight decay 5e-4, 200 epochs, x0.1 at epochs 100 and 150.
  'paper': dict(weight_decay=5e-4, lr_schedule='multistep', epochs=200),
  # The arm between the two: the reproduction's constant learning rate with the authors'
  # weight decay, so that the schedule's effect and the weight decay's can be told apart.
  'reproduction_paper_wd': dict(weight_decay=5e-4, lr_schedule='constant', epochs=100),
}
LR_SCHEDULES = ('constant', 'multistep', 'warmup')
PRESET_HELP = (
  'reproduction: weight decay 0.005, constant lr, 100 epochs (the reproduction\'s '
  'Table 1); paper: weight decay 5e-4, x0.1 at 50%/75% of the epochs, 200 '
  'epochs (the authors\' scripts); reproduction_paper_wd: weight decay 5e-4, constant lr, 100 '
  'epochs (the reproduction with the authors\' weight decay).'
)
COMPUTE_DTYPES = ('float32', 'bfloat16')


def _in_words(names: list[str]) -> str:
  """``'a, b and c'``."""
  return ' and '.join(filter(None, [', '.join(names[:-1]), names[-1]]))


def _optimizers_taking(argument: str) -> str:
  """The registered optimizers whose factories take ``argument``, for a flag's help."""
  return ', '.join(name for name, o in alias.REGISTRY.items() if o.takes(argument))


def _optimizer_choices() -> tuple[str, ...]:
  return tuple(sorted(alias.REGISTRY))


def _default_learning_rates(preset: str) -> str:
  """``'0.1 for padam and sgdm, 0.001 for adam'``: the registry's defaults under ``preset``."""
  names_by_rate: dict[float, list[str]] = {}
  for name, o in alias.REGISTRY.items():
    names_by_rate.setdefault(o.default_learning_rate(preset), []).append(name)
  return ', '.join(f'{rate:g} for {_in_words(names)}' for rate, names in names_by_rate.items())


def _learning_rate_unset() -> str:
  """What an unset learning rate stands for: the reproduction's, and any preset's that differ."""
  text = f'the reproduction\'s Table 1: {_default_learning_rates("reproduction")}'
  for preset in PRESETS:
    if _default_learning_rates(preset) != _default_learning_rates('reproduction'):
      text += f'; under {preset}: {_default_learning_rates(preset)}'
  return text


def _field(
  default: Any,
  help_text: str,
  *,
  short: str | None = None,
  choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None,
  unset: str | None = None,
  grid: bool = True,
  renamed: dict[str, str] | None = None,
  recorded_when_set: bool = False,
) -> Any:
  """A ``TrainConfig`` field and what the command line shows of it.

  ``short``: the flag's (and grid axis's) name where it differs from the field's;
  ``choices``: the values allowed (or a function that returns them, read at each use:
  ``choices()``); ``unset``: what ``None`` stands for; ``grid``: whether a sweep may vary
  it (numeric fields only; not those that shape the compiled program, which a vmapped
  sweep's members share); ``renamed``: former values -> today's, read from recorded
  configurations only; ``recorded_when_set``: ``config.json`` holds the field only when it
  is set (one added after runs were recorded: their records stay as they were, and a record
  without it reads as ``None``).
  """
  metadata = {
    'help': help_text,
    'short': short,
    'choices': choices,
    'unset': unset,
    'grid': grid,
    'renamed': renamed or {},
    'recorded_when_set': recorded_when_set,
  }
  return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything a training run depends on (``None``: preset or default)."""

  model: str = _field('resnet18', 'Architecture.', choices=tuple(sorted(MODELS)))
  width: float = _field(1.0, 'Channel multiplier (1 = the paper\'s model).', grid=False)
  dataset: str = _field('cifar10', 'Dataset.', choices=tuple(sorted(DATASETS)))
  data_dir: str | None = _field(
    None, 'tfds data dir, or the folder of the Fashion-MNIST IDX files.', unset='tfds\'s default'
  )
  optimizer: str = _field('padam', 'Optimizer.', choices=_optimizer_choices)
  preset: str = _field(
    'reproduction', PRESET_HELP, choices=tuple(sorted(PRESETS)), renamed={'seed': 'reproduction'}
  )
  learning_rate: float | None = _field(
    None,
    'Learning rate.',
    short='lr',
    unset=_learning_rate_unset(),
  )
  lr_start: float | None = _field(
    None,
    'With --lr_schedule warmup: the learning rate rises linearly from this to --lr over the run.',
  )
  partial: float | None = _field(
    None, f'Padam\'s p ({_optimizers_taking("partial")}).', unset=f'{DEFAULT_PARTIAL} (1/8)'
  )
  partial_end: float | None = _field(
    None, 'If set, p moves linearly from --partial to this over the run.'
  )
  weight_decay: float | None = _field(None, 'Weight decay.', unset='the preset\'s')
  momentum: float = _field(0.9, f'Momentum ({_optimizers_taking("momentum")}).')
  b1: float = _field(0.9, f'Decay of the first-moment average ({_optimizers_taking("b1")}).')
  b2: float = _field(0.999, f'Decay of the second-moment average ({_optimizers_taking("b2")}).')
  eps: float = _field(
    1e-8, f'Added to the denominator of the update ({_optimizers_taking("eps")}).'
  )
  epochs: int | None = _field(None, 'Epochs.', unset='the preset\'s', grid=False)
  batch_size: int = _field(128, 'Training batch size.', grid=False)
  eval_batch_size: int = _field(100, 'Evaluation batch size.', grid=False)
  lr_schedule: str | None = _field(
    None, 'Learning-rate schedule.', choices=LR_SCHEDULES, unset='the preset\'s'
  )
  drop_remainder: bool = _field(
    False,
    'Drop the last partial batch (default: keep it, as the authors: 391 steps per CIFAR epoch).',
  )
  seed: int = _field(0, 'Seed of init, shuffling and augmentation.')
  compute_dtype: str = _field(
    'float32', 'Activation dtype (bfloat16 for GPU/TPU).', choices=COMPUTE_DTYPES
  )
  train_size: int | None = _field(
    None, 'Train on the first N training examples only.', unset='all', grid=False
  )
  test_size: int | None = _field(
    None, 'Evaluate on the first N test examples only.', unset='all', grid=False
  )
  validation_size: int | None = _field(
    None,
    'Hold out the last N training images as a validation split, evaluated every epoch beside '
    'the test set.',
    unset='none',
    grid=False,
    recorded_when_set=True,
  )

  def to_dict(self) -> dict[str, Any]:
    """The fields as ``config.json`` records them (those ``RECORDED_WHEN_SET`` only when
    set)."""
    return {
      name: value
      for name, value in dataclasses.asdict(self).items()
      if value is not None or name not in RECORDED_WHEN_SET
    }

  def schedules_depend_on_epochs(self) -> bool:
    """Whether the learning-rate or p schedule is laid out over ``epochs``."""
    return self.lr_schedule in ('multistep', 'warmup') or self.partial_end is not None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResolvedConfig(TrainConfig):
  """A ``TrainConfig`` that ``resolve`` has filled in and validated.

  The same fields, with the same values in ``to_dict()`` (so ``config.json`` is the same),
  but those ``resolve`` always fills are typed without ``None``. ``partial`` is set exactly
  for the optimizers that take it, ``lr_start`` exactly for the warmup schedule.
  """

  epochs: int
  learning_rate: float
  weight_decay: float
  lr_schedule: str

  def __post_init__(self) -> None:
    for name in ('epochs', 'learning_rate', 'weight_decay', 'lr_schedule'):
      if getattr(self, name) is None:
        raise ValueError(f'{name} is None: a ResolvedConfig comes from resolve(), which sets it')


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)
# Fields that ``config.json`` holds only when set; a record without one reads as ``None``.
RECORDED_WHEN_SET: tuple[str, ...] = tuple(
  name for name, f in FIELDS.items() if f.metadata['recorded_when_set']
)


class ConfigError(ValueError):
  """A bad value of a ``TrainConfig`` field: ``field`` names it, ``problem`` says the rest.

  The message reads ``'<field> <problem>'``; a launcher says ``'--<flag> <problem>'``.
  """

  def __init__(self, field: str, problem: str):
    super().__init__(f'{field} {problem}')
    self.field = field
    self.problem = problem


def field_type(name: str) -> type:
  """The type of a field's values other than ``None``: bool, int, float or str."""
  hint = _HINTS[name]
  if typing.get_origin(hint) in (typing.Union, types.UnionType):
    (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
  return hint


def choices(name: str) -> tuple[str, ...] | None:
  """The values a field allows, or None where any value of its type goes."""
  allowed = FIELDS[name].metadata['choices']
  return allowed() if callable(allowed) else allowed


def short_name(name: str) -> str:
  """The field's name on the command line (``lr`` for ``learning_rate``)."""
  return FIELDS[name].metadata['short'] or name


def field_named(name: str) -> str | None:
  """The field a field name or short name denotes, or None."""
  return next((f for f in FIELDS if name in (f, short_name(f))), None)


# The fields a sweep may vary, with the type of their values.
GRID_AXES: dict[str, type] = {
  name: field_type(name)
  for name, f in FIELDS.items()
  if field_type(name) in (int, float) and f.metadata['grid']
}


def from_record(fields: dict[str, Any]) -> dict[str, Any]:
  """A recorded configuration (``config.json``) in today's names: a value renamed since
  (the preset ``seed``, now ``reproduction``) reads as its new name."""
  current = dict(fields)
  for name, f in FIELDS.items():
    value = current.get(name)
    if isinstance(value, str) and value in f.metadata['renamed']:
      current[name] = f.metadata['renamed'][value]
  return current


def _check_choice(name: str, value: Any) -> None:
  allowed = choices(name)
  if value is None or allowed is None or value in allowed:
    return
  renamed = FIELDS[name].metadata['renamed']
  if value in renamed:
    raise ConfigError(name, f'{value!r} is now called {renamed[value]!r}')
  raise ConfigError(name, f'{value!r} is not one of: {", ".join(sorted(allowed))}')


def resolve(config: TrainConfig) -> ResolvedConfig:
  """Fills ``None`` fields from the preset and defaults, and validates."""
  for name in FIELDS:
    _check_choice(name, getattr(config, name))
  optimizer = alias.REGISTRY[config.optimizer]
  values = {name: getattr(config, name) for name in FIELDS}
  for name, value in PRESETS[config.preset].items():
    if values[name] is None:
      values[name] = value
  if values['learning_rate'] is None:
    values['learning_rate'] = optimizer.default_learning_rate(config.preset)
  if optimizer.takes_partial and values['partial'] is None:
    values['partial'] = DEFAULT_PARTIAL
  resolved = ResolvedConfig(**values)
  if not optimizer.takes_partial:
    for name in ('partial', 'partial_end'):
      if getattr(resolved, name) is not None:
        with_partial = [n for n, o in alias.REGISTRY.items() if o.takes_partial]
        raise ConfigError(
          name, f'applies only to {_in_words(with_partial)}, not to {resolved.optimizer!r}'
        )
  for name in (
    'epochs',
    'batch_size',
    'eval_batch_size',
    'train_size',
    'test_size',
    'validation_size',
  ):
    value = getattr(resolved, name)
    if value is not None and value < 1:
      raise ConfigError(name, f'must be >= 1, got {value}')
  if (resolved.lr_start is None) != (resolved.lr_schedule != 'warmup'):
    raise ConfigError(
      'lr_start',
      'is required by lr_schedule warmup and used by no other '
      f'schedule (lr_schedule {resolved.lr_schedule!r}, lr_start '
      f'{resolved.lr_start!r})',
    )
  if not resolved.width > 0:
    raise ConfigError('width', f'must be > 0, got {resolved.width}')
  make_optimizer(resolved, steps_per_epoch=1)  # validates the hyperparameters
  return resolved


def make_optimizer(
  config: ResolvedConfig, steps_per_epoch: int
) -> tuple[optax.GradientTransformation, Callable, Callable | None]:
  """The optimizer of a resolved config, its learning-rate and p schedules.

  Returns ``(tx, learning_rate(step), partial(step) or None)``. A hyperparameter out of
  its range raises ``ConfigError`` naming its field.
  """
  try:
    return _make_optimizer(config, steps_per_epoch)
  except HyperparameterError as error:
    if error.name not in FIELDS:
      raise
    raise ConfigError(error.name, error.problem) from None


def _make_optimizer(
  config: ResolvedConfig, steps_per_epoch: int
) -> tuple[optax.GradientTransformation, Callable, Callable | None]:
  total_steps = config.epochs * steps_per_epoch
  check_non_negative('learning_rate', config.learning_rate)
  check_non_negative('lr_start', config.lr_start)
  for name in ('partial', 'partial_end'):
    check_hyperparameter(name, getattr(config, name), 0.0, 0.5, high_inclusive=True)
  if config.lr_schedule == 'multistep':
    learning_rate = schedules.multistep(config.learning_rate, total_steps)
  elif config.lr_start is not None:  # the warmup schedule, the only one with lr_start
    learning_rate = schedules.linear(config.lr_start, config.learning_rate, total_steps)
  else:
    learning_rate = optax.constant_schedule(config.learning_rate)
  partial = None
  if config.partial is not None:  # set exactly for the optimizers that take it
    partial = (
      optax.constant_schedule(config.partial)
      if config.partial_end is None
      else schedules.linear(config.partial, config.partial_end, total_steps)
    )
  candidates = dict(
    learning_rate=learning_rate,
    partial=partial,
    weight_decay=config.weight_decay,
    momentum=config.momentum,
    b1=config.b1,
    b2=config.b2,
    eps=config.eps,
  )
  optimizer = alias.REGISTRY[config.optimizer]
  kwargs = {k: v for k, v in candidates.items() if optimizer.takes(k)}
  return optimizer.factory(**kwargs), learning_rate, partial
