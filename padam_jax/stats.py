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

Two runs of the same thing (say, a training run in JAX and in PyTorch) are compared by
an equivalence test, two one-sided tests (TOST) at level ``ALPHA`` with a margin ``m``
(``equivalence``):

* equivalent: the ``1 - 2 * ALPHA`` (90%) interval lies inside ``(-m, m)`` (both
  one-sided tests reject a difference of ``m`` or more);
* different: the 95% interval lies wholly beyond the margin (``low > m`` or
  ``high < -m``): the difference is shown to exceed ``m`` (and so to exclude 0);
* undecided: otherwise, or when a group has fewer than two seeds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

CONFIDENCE = 0.95
KINDS = ('greater', 'less', 'within')
SUPPORTED, CONTRADICTED, INCONCLUSIVE = 'supported', 'contradicted', 'inconclusive'
ALPHA = 0.05  # each one-sided test of the equivalence test
EQUIVALENT, DIFFERENT, UNDECIDED = 'equivalent', 'different', 'undecided'
_MAX_SEEDS = 1000


@dataclasses.dataclass(frozen=True)
class Interval:
  """A contrast's estimate and its interval (``low == high == estimate`` without spread;
  ``None`` bounds when some group has fewer than two values)."""

  estimate: float
  low: float | None
  high: float | None
  seeds: tuple[int, ...]  # values per group


def _t_quantile(df: float, confidence: float) -> float:
  from scipy import stats

  return float(stats.t.ppf(0.5 + confidence / 2, df))


def _welch(
  variances: Sequence[float], coefficients: Sequence[float], counts: Sequence[int]
) -> tuple[float, float]:
  """``(standard error, degrees of freedom)`` of the contrast."""
  parts = [a * a * v / n for a, v, n in zip(coefficients, variances, counts, strict=True)]
  se2 = sum(parts)
  if se2 == 0:
    return 0.0, math.inf
  df = se2**2 / sum(p * p / (n - 1) for p, n in zip(parts, counts, strict=True))
  return math.sqrt(se2), df


def _moments(
  groups: Sequence[Sequence[float]],
) -> tuple[tuple[int, ...], list[float], list[float] | None]:
  """Per group without its NaN values: counts, means and sample variances (None when a
  group has fewer than two values)."""
  clean = [[float(v) for v in g if not math.isnan(v)] for g in groups]
  counts = tuple(len(g) for g in clean)
  if min(counts) == 0:
    raise ValueError(f'a group of the contrast holds no value (values per group: {counts})')
  means = [sum(g) / len(g) for g in clean]
  if min(counts) < 2:
    return counts, means, None
  return (
    counts,
    means,
    [sum((v - m) ** 2 for v in g) / (len(g) - 1) for g, m in zip(clean, means, strict=True)],
  )


def _interval(
  estimate: float, se: float, df: float, confidence: float, counts: tuple[int, ...]
) -> Interval:
  half = 0.0 if se == 0 else _t_quantile(df, confidence) * se
  return Interval(estimate, estimate - half, estimate + half, counts)


def contrast(
  groups: Sequence[Sequence[float]], coefficients: Sequence[float], confidence: float = CONFIDENCE
) -> Interval:
  """``sum_i a_i * mean(groups[i])`` with Welch's interval; NaN values are dropped."""
  if len(groups) != len(coefficients):
    raise ValueError(f'{len(groups)} groups for {len(coefficients)} coefficients')
  counts, means, variances = _moments(groups)
  estimate = sum(a * m for a, m in zip(coefficients, means, strict=True))
  if variances is None:
    return Interval(estimate, None, None, counts)
  return _interval(estimate, *_welch(variances, coefficients, counts), confidence, counts)


def shifted(
  groups: Sequence[Sequence[float]], coefficients: Sequence[float], by: float
) -> list[list[float]]:
  """``groups`` whose contrast (``contrast``'s, by ``coefficients``) is the original one
  minus ``by``: the claim ``x > threshold`` tested as ``x - threshold > 0``."""
  first = [v - by / coefficients[0] for v in groups[0]]
  return [first, *(list(g) for g in groups[1:])]


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


def _seeds_until(
  groups: Sequence[Sequence[float]],
  coefficients: Sequence[float],
  decided: Callable[[float, float, float, tuple[int, ...]], bool],
) -> int | None:
  """The fewest seeds per group (2..1000) for which ``decided(estimate, se, df, counts)``
  holds with the means and variances measured now; ``None`` if none does or a group has
  fewer than two values.

  Found by bisection: with the estimate fixed, more seeds only narrow the interval (the
  standard error and the t quantile both fall), so once decided, every larger count is."""
  counts, means, variances = _moments(groups)
  if variances is None:
    return None
  estimate = sum(a * m for a, m in zip(coefficients, means, strict=True))

  def decided_at(n: int) -> bool:
    counts = (n,) * len(means)
    return decided(estimate, *_welch(variances, coefficients, counts), counts)

  if not decided_at(_MAX_SEEDS):
    return None
  low, high = 2, _MAX_SEEDS
  while low < high:
    middle = (low + high) // 2
    if decided_at(middle):
      high = middle
    else:
      low = middle + 1
  return low


def seeds_to_decide(
  groups: Sequence[Sequence[float]],
  coefficients: Sequence[float],
  kind: str,
  margin: float = 0.0,
  confidence: float = CONFIDENCE,
) -> int | None:
  """Seeds per group that would make the verdict other than inconclusive, if the means
  and standard deviations measured now stayed as they are; ``None`` if no number up to
  1000 would (an estimate on the boundary, or fewer than two seeds to measure a spread)."""
  return _seeds_until(
    groups,
    coefficients,
    lambda estimate, se, df, counts: (
      verdict(_interval(estimate, se, df, confidence, counts), kind, margin) != INCONCLUSIVE
    ),
  )


@dataclasses.dataclass(frozen=True)
class Equivalence:
  """An equivalence test: the ``1 - 2 * alpha`` and ``1 - alpha`` intervals, the verdict
  (module docstring) and, when undecided, the seeds per group the measured means and
  spreads would need to decide (``None``: none up to 1000, or no spread measured)."""

  margin: float
  inner: Interval  # 90% at alpha 0.05: the TOST interval
  outer: Interval  # 95%
  verdict: str
  seeds_needed: int | None


def equivalence_verdict(inner: Interval, outer: Interval, margin: float) -> str:
  """The rule of this module's docstring for a margin ``m > 0``."""
  if inner.low is None or inner.high is None or outer.low is None or outer.high is None:
    return UNDECIDED
  if -margin < inner.low and inner.high < margin:
    return EQUIVALENT
  if outer.low > margin or outer.high < -margin:
    return DIFFERENT
  return UNDECIDED


def equivalence(
  groups: Sequence[Sequence[float]],
  coefficients: Sequence[float],
  margin: float,
  alpha: float = ALPHA,
) -> Equivalence:
  """TOST of ``sum_i a_i * mean(groups[i])`` against ``(-margin, margin)``, Welch's
  intervals; NaN values are dropped."""
  if not margin > 0:
    raise ValueError(f'the equivalence margin must be > 0, got {margin}')
  if not 0 < alpha < 0.5:
    raise ValueError(f'alpha must lie in (0, 0.5), got {alpha}')
  inner = contrast(groups, coefficients, 1 - 2 * alpha)
  outer = contrast(groups, coefficients, 1 - alpha)
  decision = equivalence_verdict(inner, outer, margin)

  def decided(estimate: float, se: float, df: float, counts: tuple[int, ...]) -> bool:
    return (
      equivalence_verdict(
        _interval(estimate, se, df, 1 - 2 * alpha, counts),
        _interval(estimate, se, df, 1 - alpha, counts),
        margin,
      )
      != UNDECIDED
    )

  needed = _seeds_until(groups, coefficients, decided) if decision == UNDECIDED else None
  return Equivalence(margin, inner, outer, decision, needed)
