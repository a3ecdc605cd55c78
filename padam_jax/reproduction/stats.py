"""Intervals over seeds and the verdict rule that every comparison of runs uses.

A comparison is a linear contrast of group means, ``sum_i a_i * mean(group_i)`` (two
optimizers: ``a = (1, -1)``; an interaction of a 2x2 grid: ``(1, -1, -1, 1)``). Its 95%
interval is Welch's: the groups (one value per seed) are taken as independent samples
with their own variances, the degrees of freedom from the Welch-Satterthwaite formula.
A claim states the contrast's direction (``greater``: > 0, ``less``: < 0) or that it
lies within a margin (``within``: |contrast| < margin). The rule:

* supported: the interval lies wholly on the claimed side (inside the margin);
* contradicted: the interval lies wholly on the other side (outside the margin);
* inconclusive: otherwise, or when a group has fewer than two seeds (no interval).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

CONFIDENCE = 0.95
KINDS = ('greater', 'less', 'within')
SUPPORTED, CONTRADICTED, INCONCLUSIVE = 'supported', 'contradicted', 'inconclusive'
_MAX_SEEDS = 1000


@dataclasses.dataclass(frozen=True)
class Interval:
  """A contrast's estimate and its interval (``low == high == estimate`` without spread;
  ``None`` bounds when some group has fewer than two values)."""

  estimate: float
  low: Optional[float]
  high: Optional[float]
  seeds: tuple[int, ...]  # values per group


def _t_quantile(df: float, confidence: float) -> float:
  from scipy import stats  # pylint: disable=import-outside-toplevel
  return float(stats.t.ppf(0.5 + confidence / 2, df))


def _welch(variances: Sequence[float], coefficients: Sequence[float],
           counts: Sequence[int]) -> tuple[float, float]:
  """``(standard error, degrees of freedom)`` of the contrast."""
  parts = [a * a * v / n for a, v, n in zip(coefficients, variances, counts)]
  se2 = sum(parts)
  if se2 == 0:
    return 0.0, math.inf
  df = se2 ** 2 / sum(p * p / (n - 1) for p, n in zip(parts, counts))
  return math.sqrt(se2), df


def _moments(groups: Sequence[Sequence[float]]
             ) -> tuple[tuple[int, ...], list[float], Optional[list[float]]]:
  """Per group without its NaN values: counts, means and sample variances (None when a
  group has fewer than two values)."""
  clean = [[float(v) for v in g if not math.isnan(v)] for g in groups]
  counts = tuple(len(g) for g in clean)
  if min(counts) == 0:
    raise ValueError(f'a group of the contrast holds no value (values per group: {counts})')
  means = [sum(g) / len(g) for g in clean]
  if min(counts) < 2:
    return counts, means, None
  return counts, means, [sum((v - m) ** 2 for v in g) / (len(g) - 1)
                         for g, m in zip(clean, means)]


def contrast(groups: Sequence[Sequence[float]], coefficients: Sequence[float],
             confidence: float = CONFIDENCE) -> Interval:
  """``sum_i a_i * mean(groups[i])`` with Welch's interval; NaN values are dropped."""
  if len(groups) != len(coefficients):
    raise ValueError(f'{len(groups)} groups for {len(coefficients)} coefficients')
  counts, means, variances = _moments(groups)
  estimate = sum(a * m for a, m in zip(coefficients, means))
  if variances is None:
    return Interval(estimate, None, None, counts)
  se, df = _welch(variances, coefficients, counts)
  half = 0.0 if se == 0 else _t_quantile(df, confidence) * se
  return Interval(estimate, estimate - half, estimate + half, counts)


def verdict(interval: Interval, kind: str, margin: float = 0.0) -> str:
  """The rule of this module's docstring."""
  if kind not in KINDS:
    raise ValueError(f'unknown claim kind {kind!r}; choose one of {", ".join(KINDS)}')
  low, high = interval.low, interval.high
  if low is None or high is None:
    return INCONCLUSIVE
  if kind == 'greater':
    return SUPPORTED if low > 0 else CONTRADICTED if high < 0 else INCONCLUSIVE
  if kind == 'less':
    return SUPPORTED if high < 0 else CONTRADICTED if low > 0 else INCONCLUSIVE
  if -margin < low and high < margin:
    return SUPPORTED
  return CONTRADICTED if high < -margin or low > margin else INCONCLUSIVE


def seeds_to_decide(groups: Sequence[Sequence[float]], coefficients: Sequence[float],
                    kind: str, margin: float = 0.0,
                    confidence: float = CONFIDENCE) -> Optional[int]:
  """Seeds per group that would make the verdict other than inconclusive, if the means
  and standard deviations measured now stayed as they are; ``None`` if no number up to
  1000 would (an estimate on the boundary, or fewer than two seeds to measure a spread)."""
  counts, means, variances = _moments(groups)
  if variances is None:
    return None
  estimate = sum(a * m for a, m in zip(coefficients, means))
  for n in range(2, _MAX_SEEDS + 1):
    se, df = _welch(variances, coefficients, [n] * len(counts))
    half = _t_quantile(df, confidence) * se if se else 0.0
    interval = Interval(estimate, estimate - half, estimate + half, (n,) * len(counts))
    if verdict(interval, kind, margin) != INCONCLUSIVE:
      return n
  return None
