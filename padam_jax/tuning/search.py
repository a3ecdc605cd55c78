"""Search spaces and their quasi-random trials.

A :class:`SearchSpace` is an optimizer and a box of hyperparameters, each on a linear or a
log scale. :func:`draw` places ``trials`` points in it with a scrambled Halton sequence
(scipy's ``qmc.Halton``) from a fixed seed: the same space, count and seed always give the
same trials, and the first ``k`` of them are spread over the box for every ``k``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

SCALES = ('linear', 'log')


@dataclasses.dataclass(frozen=True)
class Dimension:
  """One hyperparameter (a ``TrainConfig`` field) searched over ``[low, high]``."""

  field: str
  low: float
  high: float
  scale: str = 'log'

  def __post_init__(self) -> None:
    if self.scale not in SCALES:
      raise ValueError(f'{self.field}: scale must be one of {SCALES}, got {self.scale!r}')
    if not self.low < self.high:
      raise ValueError(f'{self.field}: low must be below high, got [{self.low}, {self.high}]')
    if self.scale == 'log' and self.low <= 0:
      raise ValueError(f'{self.field}: a log scale needs low > 0, got {self.low}')

  def value(self, unit: float) -> float:
    """The value at ``unit`` in [0, 1) of this dimension's scale."""
    if self.scale == 'log':
      return math.exp(math.log(self.low) + unit * (math.log(self.high) - math.log(self.low)))
    return self.low + unit * (self.high - self.low)

  def describe(self) -> str:
    return f'{self.field} {self.scale}-uniform in [{self.low:g}, {self.high:g}]'


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """An optimizer's hyperparameters to search, and the fields held fixed."""

  optimizer: str
  dimensions: tuple[Dimension, ...]
  fixed: tuple[tuple[str, Any], ...] = ()

  def __post_init__(self) -> None:
    names = [d.field for d in self.dimensions]
    if not names or len(set(names)) != len(names):
      raise ValueError(f'{self.optimizer}: dimensions must be named once each, got {names}')
    clash = set(names) & {name for name, _ in self.fixed}
    if clash:
      raise ValueError(f'{self.optimizer}: {sorted(clash)} both searched and fixed')

  def describe(self) -> str:
    return f'{self.optimizer}: ' + ', '.join(d.describe() for d in self.dimensions)


def draw(space: SearchSpace, trials: int, seed: int) -> list[dict[str, Any]]:
  """``trials`` settings of ``space`` (the fixed fields included), the scrambled Halton
  sequence of ``seed`` mapped through each dimension's scale."""
  from scipy.stats import qmc

  if trials < 1:
    raise ValueError(f'trials must be >= 1, got {trials}')
  units = qmc.Halton(d=len(space.dimensions), scramble=True, seed=seed).random(trials)
  return [
    {
      **dict(space.fixed),
      **{d.field: d.value(float(u)) for d, u in zip(space.dimensions, row, strict=True)},
    }
    for row in units
  ]


def inside(space: SearchSpace, setting: dict[str, Any]) -> bool:
  """Whether every searched value of ``setting`` lies in its dimension's range."""
  return all(d.low <= setting[d.field] <= d.high for d in space.dimensions)


def on_edge(space: SearchSpace, setting: dict[str, Any], share: float = 0.05) -> list[str]:
  """The dimensions where ``setting`` lies within ``share`` of the range (on its scale) of
  either end: a winner there says the range may be too narrow."""
  edges = []
  for d in space.dimensions:
    value = setting[d.field]
    if d.scale == 'log':
      unit = (math.log(value) - math.log(d.low)) / (math.log(d.high) - math.log(d.low))
    else:
      unit = (value - d.low) / (d.high - d.low)
    if unit < share or unit > 1 - share:
      edges.append(d.field)
  return edges


def spaces_by_optimizer(spaces: Sequence[SearchSpace]) -> dict[str, SearchSpace]:
  """``{optimizer: space}``; an optimizer listed twice is refused."""
  found: dict[str, SearchSpace] = {}
  for space in spaces:
    if space.optimizer in found:
      raise ValueError(f'optimizer {space.optimizer!r} has two search spaces')
    found[space.optimizer] = space
  return found
