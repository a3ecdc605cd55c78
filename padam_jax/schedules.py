"""Learning-rate and partial-power schedules (functions of the optimizer step)."""

from __future__ import annotations

from collections.abc import Sequence

import optax


def multistep(
  value: float, total_steps: int, fractions: Sequence[float] = (0.5, 0.75), factor: float = 0.1
) -> optax.Schedule:
  """``value``, times ``factor`` at each fraction of ``total_steps``.

  The authors' protocol (x0.1 at epochs 100 and 150 of 200) is the default.
  Boundaries are rounded down to whole steps.
  """
  if total_steps < 1:
    raise ValueError(f'total_steps must be >= 1, got {total_steps}')
  if any(not 0 < f < 1 for f in fractions):
    raise ValueError(f'fractions must lie in (0, 1), got {fractions}')
  boundaries = {int(f * total_steps): factor for f in fractions}
  return optax.piecewise_constant_schedule(value, boundaries)


def linear(start: float, end: float, total_steps: int) -> optax.Schedule:
  """From ``start`` to ``end`` linearly over ``total_steps``, then constant.

  For the partial power p this is the student reproduction's proposal: begin adaptive (large p,
  as Adam) and end SGD-like (small p); for the learning rate, its companion
  warm-up (small while p is large, rising as p falls).
  """
  if total_steps < 1:
    raise ValueError(f'total_steps must be >= 1, got {total_steps}')
  return optax.linear_schedule(start, end, total_steps)
