"""Choosing a winner on held-out data, and what a smaller budget would have chosen.

A trial is scored from its ``metrics.jsonl`` records by the validation accuracy, never by
the test set's: :func:`validation_score` reads only ``validation_error``. The expected best
of ``k`` trials (:func:`expected_best_of_k`) is the mean of the best score over every set
of ``k`` of the ``n`` trials, computed exactly from the sorted scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

VALIDATION_KEY = 'validation_error'


def last_epochs(epochs: int, share: float) -> int:
  """How many of the last epochs a share of ``epochs`` covers (rounded, at least one)."""
  return max(1, round(epochs * share))


def validation_score(records: Sequence[Mapping[str, Any]], share: float = 1 / 6) -> float:
  """A trial's validation accuracy (%): the mean over the last ``share`` of its epochs.

  Reads ``validation_error`` alone; a run without it (or one that diverged, with a
  non-finite value in the window) raises ``ValueError``, so that a selection never falls
  back on the test set.
  """
  errors = [r.get(VALIDATION_KEY) for r in records if 'epoch' in r]
  if not errors or any(e is None for e in errors):
    raise ValueError(f'the records hold no {VALIDATION_KEY} in every epoch')
  window = np.asarray(errors[-last_epochs(len(errors), share) :], dtype=float)
  return float(100.0 * (1.0 - window.mean())) if np.all(np.isfinite(window)) else float('nan')


def best(scores: Sequence[float]) -> int:
  """The index of the highest finite score (the first such on a tie)."""
  finite = [(s, -i) for i, s in enumerate(scores) if math.isfinite(s)]
  if not finite:
    raise ValueError('no trial has a finite score')
  return -max(finite)[1]


def expected_best_of_k(scores: Sequence[float], k: int) -> float:
  """The mean, over every set of ``k`` of the trials, of the set's best score; a
  non-finite score counts as the worst."""
  n = len(scores)
  if not 1 <= k <= n:
    raise ValueError(f'k must lie in [1, {n}], got {k}')
  ordered = sorted(s if math.isfinite(s) else -math.inf for s in scores)
  total = math.comb(n, k)
  # The i-th smallest (1-based) is the best of exactly comb(i - 1, k - 1) of the sets.
  weights = [math.comb(i - 1, k - 1) / total for i in range(1, n + 1)]
  return float(sum(w * s for w, s in zip(weights, ordered, strict=True) if w))
