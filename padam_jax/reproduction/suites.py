"""The student reproduction's experiments as data: which sweeps to train, at which scale,
what each plots.

A suite is a list of :class:`SweepSpec` (a base configuration and a grid, trained by
:func:`padam_jax.training.sweep.run_sweep` into ``WORKDIR/<name>/``) and the figures or tables
it draws from them (:class:`Curve`: a sweep and the grid values that select runs;
the random-seed axis becomes the error bars). Sweeps are shared between suites: Figure 1's
ResNet-18 Padam line is the ``p = 1/8, lr = 0.1`` cell of Figure 3's grid, Table 2
reads Figure 1's Wide ResNet runs, so ``--suite all`` trains each run once.
``--scale full`` and ``--scale cpu`` differ only in the numbers of :data:`SCALES`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

ARCHITECTURES = ('vgg16', 'resnet18', 'wrn16_4')
OPTIMIZERS = ('padam', 'sgdm', 'adam', 'amsgrad')
PARTIALS = (0.25, 0.125, 0.0625)
LEARNING_RATES = (0.1, 0.01, 0.001)
# The reproduction's proposal: start adaptive with a small step, end SGD-like with a large one.
P_SCHEDULE = dict(
  partial=0.25, partial_end=0.0625, lr_schedule='warmup', lr_start=0.01, learning_rate=0.1
)

# The reproduction's Table 2: Wide ResNet on CIFAR-10, test accuracy (%) at epochs 25/50/75/100.
REPRODUCTION_TABLE2 = {
  'adam': (84.59, 87.75, 87.51, 88.65),
  'amsgrad': (86.83, 88.08, 88.88, 89.18),
  'sgdm': (81.39, 82.13, 78.46, 81.78),
  'padam': (88.07, 87.66, 87.68, 88.43),
}
REPRODUCTION_TABLE2_EPOCHS = (25, 50, 75, 100)


@dataclasses.dataclass(frozen=True)
class Scale:
  """What a reproduction trains on: the only difference between ``full`` and ``cpu``."""

  dataset: str
  width: float
  epochs: int | None  # None: the preset's (reproduction 100, paper 200)
  train_size: int | None = None
  test_size: int | None = None
  description: str = ''

  def fields(self) -> dict[str, Any]:
    """The ``TrainConfig`` fields this scale sets."""
    return dict(
      dataset=self.dataset,
      width=self.width,
      epochs=self.epochs,
      train_size=self.train_size,
      test_size=self.test_size,
    )


SCALES = {
  'full': Scale(
    dataset='cifar10',
    width=1.0,
    epochs=None,
    description='CIFAR-10, full-width models, the preset\'s epochs',
  ),
  # Meant for `--suite all --seeds 1` (23 runs) to end within 45 minutes on 2 CPU cores
  # (measured: docs/measurements.md#cpu-scales): real Fashion-MNIST (offline), 1/8-width
  # models, 2,048 training and 1,000 test images, 8 epochs of 16 steps (docs/reproduction.md,
  # "The smoke scale").
  'cpu': Scale(
    dataset='fashion_mnist',
    width=0.125,
    epochs=8,
    train_size=2048,
    test_size=1000,
    description='Fashion-MNIST (first 2,048 train / 1,000 test images), 1/8-width models, 8 epochs',
  ),
  # Long enough that training loss flattens (the best optimizer's last two epochs
  # improve it by less than 5%), meant for `--suite table2 --seeds 3` to fit in 2 hours
  # on 2 CPU cores (measured: docs/measurements.md#cpu-scales).
  'cpu_converged': Scale(
    dataset='fashion_mnist',
    width=0.125,
    epochs=30,
    train_size=8192,
    test_size=5000,
    description='Fashion-MNIST (first 8,192 train / 5,000 test '
    'images), 1/8-width models, 30 epochs',
  ),
  # For one GPU without network (scripts/gpu/gpu_reproduce.sh sets the epochs to fit).
  'fashion_full': Scale(
    dataset='fashion_mnist',
    width=1.0,
    epochs=None,
    description='Fashion-MNIST (all 60,000 train / 10,000 test '
    'images), full-width models, the preset\'s epochs',
  ),
}


@dataclasses.dataclass(frozen=True)
class SweepSpec:
  """A sweep of the reproduction: ``WORKDIR/<name>/``, a base and a grid (seeds added)."""

  name: str
  model: str
  optimizer: str
  settings: tuple[tuple[str, Any], ...] = ()  # TrainConfig fields beyond scale and preset
  grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()


@dataclasses.dataclass(frozen=True)
class Curve:
  """One line of a figure: the runs of ``sweep`` whose grid values match ``select``."""

  label: str
  sweep: str
  select: tuple[tuple[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class Panel:
  """Curves sharing axes (one panel per metric is drawn for each)."""

  title: str
  curves: tuple[Curve, ...]


@dataclasses.dataclass(frozen=True)
class Suite:
  name: str
  description: str
  sweeps: tuple[str, ...]  # names in SWEEPS
  panels: tuple[Panel, ...] = ()  # curves of train loss and test error per epoch
  heatmap: str | None = None  # a p x lr sweep drawn as final test error
  table: str | None = None  # 'table2' or 'final'


def _baseline(model: str, optimizer: str) -> SweepSpec:
  return SweepSpec(f'{model}-{optimizer}', model, optimizer)


SWEEPS: dict[str, SweepSpec] = {
  s.name: s
  for s in [
    *(_baseline(m, o) for m in ARCHITECTURES for o in ('sgdm', 'adam', 'amsgrad')),
    _baseline('wrn16_4', 'padam'),
    # Padam at p = 1/8, lr 0.1 as a sweep of its own, for the `optimizers` suite (under the
    # reproduction preset, Figure 1 reads the same setting from the p grids below).
    _baseline('vgg16', 'padam'),
    _baseline('resnet18', 'padam'),
    SweepSpec('vgg16-padam-p', 'vgg16', 'padam', grid=(('partial', PARTIALS),)),
    SweepSpec(
      'resnet18-padam-p-lr',
      'resnet18',
      'padam',
      grid=(('partial', PARTIALS), ('learning_rate', LEARNING_RATES)),
    ),
    SweepSpec('resnet18-padam-p-schedule', 'resnet18', 'padam', settings=tuple(P_SCHEDULE.items())),
  ]
}


def padam_curve(model: str, label: str = 'padam') -> Curve:
  """Padam with p = 1/8 and lr 0.1, taken from the sweep that holds it."""
  if model == 'wrn16_4':
    return Curve(label, 'wrn16_4-padam')
  if model == 'vgg16':
    return Curve(label, 'vgg16-padam-p', (('partial', 0.125),))
  return Curve(label, 'resnet18-padam-p-lr', (('partial', 0.125), ('learning_rate', 0.1)))


def optimizer_curves(model: str) -> tuple[Curve, ...]:
  """Figure 1's lines of ``model``: Padam (p = 1/8, lr 0.1), SGDM, Adam, AMSGrad."""
  return (padam_curve(model), *(Curve(o, f'{model}-{o}') for o in ('sgdm', 'adam', 'amsgrad')))


def _p_curves(sweep: str, extra: tuple[tuple[str, Any], ...] = ()) -> tuple[Curve, ...]:
  return tuple(Curve(f'p = 1/{round(1 / p)}', sweep, (('partial', p), *extra)) for p in PARTIALS)


SUITES: dict[str, Suite] = {
  s.name: s
  for s in [
    Suite(
      'figure1',
      'Figure 1: 4 optimizers x 3 architectures',
      sweeps=tuple(sorted({c.sweep for m in ARCHITECTURES for c in optimizer_curves(m)})),
      panels=tuple(Panel(m, optimizer_curves(m)) for m in ARCHITECTURES),
    ),
    Suite(
      'table2',
      'Table 2: Wide ResNet test accuracy at 1/4, 1/2, 3/4 and all epochs',
      sweeps=tuple(f'wrn16_4-{o}' for o in OPTIMIZERS),
      panels=(Panel('wrn16_4', optimizer_curves('wrn16_4')),),
      table='table2',
    ),
    Suite(
      'optimizers',
      'The four optimizers on each network, Padam (p = 1/8, lr 0.1) as a sweep of its own: '
      'Chen & Gu\'s comparison, for --preset paper',
      sweeps=tuple(f'{m}-{o}' for m in ARCHITECTURES for o in OPTIMIZERS),
      panels=tuple(
        Panel(m, tuple(Curve(o, f'{m}-{o}') for o in OPTIMIZERS)) for m in ARCHITECTURES
      ),
    ),
    Suite(
      'figure2',
      'Figure 2: p in {1/4, 1/8, 1/16} at lr 0.1 (VGG-16 and ResNet-18)',
      sweeps=('vgg16-padam-p', 'resnet18-padam-p-lr'),
      panels=(
        Panel('vgg16', _p_curves('vgg16-padam-p')),
        Panel('resnet18', _p_curves('resnet18-padam-p-lr', (('learning_rate', 0.1),))),
      ),
    ),
    Suite(
      'figure3',
      'Figure 3: p x learning rate on ResNet-18',
      sweeps=('resnet18-padam-p-lr',),
      panels=tuple(
        Panel(f'resnet18, lr {lr:g}', _p_curves('resnet18-padam-p-lr', (('learning_rate', lr),)))
        for lr in LEARNING_RATES
      ),
      heatmap='resnet18-padam-p-lr',
    ),
    Suite(
      'p_schedule',
      'The reproduction\'s proposal: p 1/4 -> 1/16 with lr 0.01 -> 0.1, on '
      'ResNet-18, against fixed p = 1/8 and SGDM',
      sweeps=('resnet18-padam-p-schedule', 'resnet18-padam-p-lr', 'resnet18-sgdm'),
      panels=(
        Panel(
          'resnet18',
          (
            Curve('padam, p 1/4 -> 1/16, lr 0.01 -> 0.1', 'resnet18-padam-p-schedule'),
            padam_curve('resnet18', 'padam, p = 1/8, lr 0.1'),
            Curve('sgdm', 'resnet18-sgdm'),
          ),
        ),
      ),
      table='final',
    ),
  ]
}
SUITE_NAMES = tuple(SUITES)
# What 'all' trains: the student reproduction's suites. `optimizers` is left out, since under
# the reproduction preset Figure 1 already reads its Padam runs from the p grids.
ALL_SUITES = tuple(name for name in SUITE_NAMES if name != 'optimizers')


def sweeps_of(suite_names: list[str], only: list[str] | None = None) -> list[SweepSpec]:
  """The sweeps the named suites need ('all': ``ALL_SUITES``), each once, in a fixed order;
  with ``only``, just those of them."""
  names = ALL_SUITES if 'all' in suite_names else suite_names
  unknown = [n for n in names if n not in SUITES]
  if unknown:
    raise ValueError(f'unknown suite {unknown[0]!r}; choose from {", ".join(SUITE_NAMES)}, all')
  wanted = {s for n in names for s in SUITES[n].sweeps}
  if only:
    outside = sorted(set(only) - wanted)
    if outside:
      raise ValueError(
        f'sweep {outside[0]!r} is not one of the suites\' sweeps: {", ".join(sorted(wanted))}'
      )
    wanted = set(only)
  return [spec for name, spec in SWEEPS.items() if name in wanted]


def sweep_arguments(
  spec: SweepSpec, scale: Scale, preset: str, seeds: int, data_dir: str | None = None
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
  """``(TrainConfig fields, grid)`` of a sweep at a scale, preset and number of seeds."""
  if seeds < 1:
    raise ValueError(f'seeds must be >= 1, got {seeds}')
  fields = dict(
    model=spec.model,
    optimizer=spec.optimizer,
    preset=preset,
    **scale.fields(),
    data_dir=data_dir,
    **dict(spec.settings),
  )
  grid = {name: list(values) for name, values in spec.grid}
  grid['seed'] = list(range(seeds))
  return fields, grid
