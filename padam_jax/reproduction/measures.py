"""Which runs a curve reads, and the numbers measured on each run and over its seeds.

A :class:`padam_jax.reproduction.suites.Curve` selects runs of one sweep directory (one
per seed) by their grid values in ``sweep.json``; each run is its list of epoch records
(``metrics.jsonl``). A :class:`Measure` reduces one metric of those records to a number:
the reproduction's ``MEASURES`` over a window of the configured epochs, the whole-run
crosscheck over the epochs it picks. Over seeds, every figure and table shows the mean
and spread of ``over_seeds``.
"""

from __future__ import annotations

import dataclasses
import fractions
import functools
import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from padam_jax.reproduction import suites
from padam_jax.rundir import runlog
from padam_jax.training import config as config_lib
from padam_jax.training import sweep

# --- a curve's runs ---------------------------------------------------------------------


def _matches(values: dict[str, Any], select: Sequence[tuple[str, Any]]) -> bool:
  return all(
    name in values and math.isclose(values[name], want, rel_tol=1e-9) for name, want in select
  )


def _selected(
  workdir: str, curve: suites.Curve, seeds: Sequence[int] | None = None
) -> list[dict[str, Any]]:
  """The entries of ``sweep.json`` (with each run's ``dir``) that ``curve`` selects, only
  those of ``seeds`` when given."""
  runs = sweep.read_sweep(os.path.join(workdir, curve.sweep))['runs']
  return [
    run
    for run in runs
    if _matches(run['values'], curve.select)
    and (seeds is None or run['values'].get('seed') in seeds)
  ]


def has_sweep(workdir: str, sweep_name: str) -> bool:
  """Whether ``workdir`` holds the sweep ``sweep_name`` (its ``sweep.json``)."""
  return os.path.exists(os.path.join(workdir, sweep_name, sweep.SWEEP_FILE))


def curve_runs(
  workdir: str, curve: suites.Curve, seeds: Sequence[int] | None = None
) -> list[list[dict[str, Any]]]:
  """The records of every run (one per seed; only ``seeds`` when given) that ``curve``
  selects; ``FileNotFoundError`` when its sweep is missing or none of them has a record."""
  sweep_dir = os.path.join(workdir, curve.sweep)
  if not has_sweep(workdir, curve.sweep):
    raise FileNotFoundError(f'{sweep_dir} holds no sweep: run the suite first')
  runs = [runlog.read_metrics(run['dir']) for run in _selected(workdir, curve, seeds)]
  if not runs:
    raise ValueError(f'no run of {sweep_dir} has {dict(curve.select)}')
  if not any(runs):  # listed in sweep.json, but none has started (a grid not yet finished)
    raise FileNotFoundError(f'no run of {sweep_dir} with {dict(curve.select)} has a record yet')
  return runs


def configured_epochs(workdir: str, curve: suites.Curve) -> int:
  """The ``epochs`` of the runs ``curve`` selects, from the first of them that recorded its
  ``config.json`` (a grid committed cell by cell may lack its first runs)."""
  for run in _selected(workdir, curve):
    path = os.path.join(run['dir'], runlog.CONFIG_FILE)
    if os.path.exists(path):
      with open(path, encoding='utf-8') as f:
        return int(json.load(f)['epochs'])
  raise FileNotFoundError(
    f'no run of {os.path.join(workdir, curve.sweep)} with {dict(curve.select)} has a config yet'
  )


def recorded_preset(workdir: str) -> str | None:
  """The preset (``--preset``) that the runs under ``workdir`` recorded in their
  ``config.json``; None when it holds no run of the reproduction's sweeps.

  Each preset is a protocol with claims of its own, so runs of two presets in one
  ``workdir`` are refused (ValueError).
  """
  presets: dict[str, str] = {}
  for name in suites.SWEEPS:
    if not has_sweep(workdir, name):
      continue
    for run in sweep.read_sweep(os.path.join(workdir, name))['runs']:
      path = os.path.join(run['dir'], runlog.CONFIG_FILE)
      if os.path.exists(path):
        with open(path, encoding='utf-8') as f:
          presets.setdefault(config_lib.from_record(json.load(f))['preset'], run['dir'])
  if len(presets) > 1:
    found = ', '.join(f'{preset} ({where})' for preset, where in presets.items())
    raise ValueError(
      f'{workdir} holds runs of more than one preset: {found}; give each preset its own workdir'
    )
  return next(iter(presets), None)


def metric_matrix(runs: list[list[dict[str, Any]]], key: str) -> np.ndarray:
  """``float[seeds, epochs]`` of ``key``; NaN where diverged or not yet run."""
  epochs = max((len(r) for r in runs), default=0)
  matrix = np.full((len(runs), epochs), np.nan)
  for i, records in enumerate(runs):
    for j, record in enumerate(records):
      if record.get(key) is not None and not record.get('diverged'):
        matrix[i, j] = record[key]
  return matrix


# --- over seeds -------------------------------------------------------------------------


def nan_reduce(fn: Callable[..., Any], matrix: Any) -> Any:
  """``fn(matrix, axis=0)`` ignoring NaN (``fn``: ``np.nanmean``, ...); a column of NaN
  only (all diverged) stays NaN."""
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', RuntimeWarning)
    return fn(matrix, axis=0)


def over_seeds(values: Any) -> tuple[Any, Any]:
  """``(mean, standard deviation)`` over seeds (the first axis), NaN ignored: what every
  figure's band and every ``mean +- std`` cell shows. The sample deviation (ddof 1), as the
  intervals use; NaN from a single seed."""
  return nan_reduce(np.nanmean, values), nan_reduce(functools.partial(np.nanstd, ddof=1), values)


# --- measures ---------------------------------------------------------------------------


def _number(record: dict[str, Any], key: str) -> float:
  return np.nan if record.get(key) is None else float(record[key])


# A metric of an epoch record, as a measure reads it: accuracies in %, from the record's
# fraction (the test accuracy from its error).
_METRICS: dict[str, Callable[[dict[str, Any]], float]] = {
  'train_loss': lambda r: _number(r, 'train_loss'),
  'train_accuracy': lambda r: 100 * _number(r, 'train_accuracy'),
  'test_loss': lambda r: _number(r, 'test_loss'),
  'test_accuracy': lambda r: 100 * (1 - _number(r, 'test_error')),
}
_REDUCTIONS: dict[str, Callable[..., Any]] = {'mean': np.mean, 'median': np.median}


HALF_WIDTH = 2  # epochs on each side of a centred window


@dataclasses.dataclass(frozen=True)
class Measure:
  """One number per run: the mean or median of a metric over some of its epochs.

  ``over`` reduces the records it is given; ``window`` picks them as ``share`` of the
  configured epochs (rounded, at least one), at the end of the run (``at_end``) or from
  its first epoch. A table that picks its own epochs leaves the window at its default.
  """

  metric: str  # a key of _METRICS: 'train_loss', 'train_accuracy', 'test_loss', 'test_accuracy'
  label: str  # what the value is, e.g. 'test accuracy (%)'
  decimals: int  # the digits a table shows
  reduce: str = 'mean'  # or 'median'
  share: fractions.Fraction = fractions.Fraction(1)
  at_end: bool = True
  span: str = ''  # the window in words; {first}, {last} and {epochs} are filled in
  # A window of 2 * HALF_WIDTH + 1 epochs centred at this share of the run (instead of
  # ``share`` at an end).
  around: fractions.Fraction | None = None
  # Judged epoch by epoch (``judging``), each epoch's value a run's metric in that epoch.
  per_epoch: bool = False

  def __post_init__(self) -> None:
    if self.metric not in _METRICS:
      raise ValueError(f'unknown metric {self.metric!r}; choose from {", ".join(_METRICS)}')
    if self.reduce not in _REDUCTIONS:
      raise ValueError(f'unknown reduction {self.reduce!r}; choose from {", ".join(_REDUCTIONS)}')

  @property
  def is_accuracy(self) -> bool:
    """Whether the value is an accuracy in %, not a loss."""
    return self.metric.endswith('_accuracy')

  def value(self, record: dict[str, Any]) -> float:
    """The metric of one epoch record (NaN where it recorded none)."""
    return _METRICS[self.metric](record)

  def over(self, records: Sequence[dict[str, Any]]) -> float:
    """The mean or median of the metric over ``records``."""
    return float(_REDUCTIONS[self.reduce]([self.value(r) for r in records]))

  def window(self, epochs: int) -> tuple[int, int]:
    """The first and last epoch (1-based, inclusive) read of ``epochs``."""
    if self.around is not None:
      centre = max(1, round(epochs * self.around))
      return max(1, centre - HALF_WIDTH), min(epochs, centre + HALF_WIDTH)
    count = max(1, round(epochs * self.share))
    return (epochs - count + 1, epochs) if self.at_end else (1, count)


MEASURES = {
  # Under a constant learning rate one epoch's accuracy swings by several points: the
  # mean of the last sixth settles it.
  'final_accuracy': Measure(
    'test_accuracy',
    'test accuracy (%)',
    2,
    'mean',
    fractions.Fraction(1, 6),
    True,
    'mean of epochs {first}-{last}',
  ),
  # The steadier second measure of every accuracy claim, fixed before the converged runs:
  # one epoch's collapse moves a median of many epochs little.
  'median_late_accuracy': Measure(
    'test_accuracy',
    'test accuracy (%)',
    2,
    'median',
    fractions.Fraction(1, 3),
    True,
    'median of epochs {first}-{last}',
  ),
  # The height of the whole training curve ("the lowest train loss during training").
  'mean_train_loss': Measure(
    'train_loss',
    'train loss',
    3,
    'mean',
    fractions.Fraction(1),
    False,
    'mean over all {epochs} epochs',
  ),
  # "Before the 30th epoch" of 100 (the reproduction on VGG-16).
  'early_train_loss': Measure(
    'train_loss',
    'train loss',
    3,
    'mean',
    fractions.Fraction(3, 10),
    False,
    'mean of epochs 1-{last} (the first 30%)',
  ),
  # "Early on" under the authors' preset: half of the epochs before its first decay (x0.1
  # at 50% of the epochs), while every optimizer still trains at its initial lr.
  'early_paper_train_loss': Measure(
    'train_loss',
    'train loss',
    3,
    'mean',
    fractions.Fraction(1, 4),
    False,
    'mean of epochs 1-{last} (the first quarter: half of those before the first lr decay)',
  ),
  # Table 2's first column (epoch 25 of 100): five epochs around the quarter of the run,
  # by their mean and, steadier, their median. Fixed before it was computed.
  'early_accuracy': Measure(
    'test_accuracy',
    'test accuracy (%)',
    2,
    'mean',
    span='mean of epochs {first}-{last} (around the quarter of the run)',
    around=fractions.Fraction(1, 4),
  ),
  'early_median_accuracy': Measure(
    'test_accuracy',
    'test accuracy (%)',
    2,
    'median',
    span='median of epochs {first}-{last} (around the quarter of the run)',
    around=fractions.Fraction(1, 4),
  ),
  # "Lowest during the whole run", read over the epochs themselves: every epoch judged,
  # with a Bonferroni correction over them (judging). Fixed before it was computed.
  'train_loss_each_epoch': Measure(
    'train_loss',
    'train loss',
    3,
    'mean',
    fractions.Fraction(1),
    False,
    'epoch-by-epoch reading of all {epochs} epochs',
    per_epoch=True,
  ),
}


def window(measure: str, epochs: int) -> tuple[int, int]:
  """The first and last epoch (1-based, inclusive) that ``measure`` reads of ``epochs``."""
  if measure not in MEASURES:
    raise ValueError(f'unknown measure {measure!r}; choose from {", ".join(MEASURES)}')
  return MEASURES[measure].window(epochs)


def describe_window(measure: str, epochs: int) -> str:
  """``measure``'s window in words, e.g. 'mean of epochs 26-30'."""
  first, last = window(measure, epochs)
  return MEASURES[measure].span.format(first=first, last=last, epochs=epochs)


def last_epochs(epochs: int) -> int:
  """How many final epochs ``final_accuracy`` averages: a sixth of them, at least one."""
  first, last = window('final_accuracy', epochs)
  return last - first + 1


def _window_records(records: list[dict], epochs: int, measure: str) -> list[dict] | None:
  """The records of ``measure``'s window; None if the run diverged or has fewer than
  ``epochs`` records."""
  first, last = window(measure, epochs)
  if len(records) < epochs or any(r.get('diverged') for r in records[:epochs]):
    return None
  return records[first - 1 : last]


def run_value(records: list[dict], epochs: int, measure: str) -> float:
  """One run's ``measure`` (``MEASURES``); NaN if it diverged or has fewer than ``epochs``
  records."""
  read = _window_records(records, epochs, measure)
  return float('nan') if read is None else MEASURES[measure].over(read)


def run_values_by_epoch(records: list[dict], epochs: int, measure: str) -> list[float]:
  """One run's metric in each epoch of ``measure``'s window (all NaN if it diverged or has
  fewer than ``epochs`` records)."""
  read = _window_records(records, epochs, measure)
  if read is None:
    first, last = window(measure, epochs)
    return [float('nan')] * (last - first + 1)
  return [MEASURES[measure].value(r) for r in read]
