"""Each claim judged on the runs under a workdir: its interval over seeds and its verdict.

A workdir's claims are those of the preset its runs recorded
(``measures.recorded_preset``). A claim's contrast gets the interval and the rule of
:mod:`padam_jax.stats`; a one-sided claim with a margin is judged as ``x - threshold``. A
run that diverged or has not finished contributes no value (``Judged.excluded`` counts
them).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from padam_jax import stats
from padam_jax.reproduction import claims, measures


def protocol_of(workdir: str) -> str:
  """The protocol (a key of ``claims.PROTOCOLS``) of the runs under ``workdir``: the preset
  their ``config.json`` records, the default ``reproduction`` when it holds none."""
  preset = measures.recorded_preset(workdir)
  if preset is not None and preset not in claims.CLAIM_SETS:
    raise ValueError(f'{workdir} holds runs of the preset {preset!r}, which has no claims')
  return preset or 'reproduction'


@dataclasses.dataclass(frozen=True)
class Judged:
  """A claim as measured: its interval, verdict, and what was missing."""

  claim: claims.Claim
  interval: stats.Interval | None
  verdict: str
  epochs: int | None
  excluded: int  # runs that diverged or have not finished
  missing: tuple[str, ...]  # sweeps not trained at all
  seeds_needed: int | None


def _shifted(groups: list[list[float]], coefficients: list[float], by: float) -> list[list[float]]:
  """``groups`` whose contrast is the original one minus ``by``."""
  first = [v - by / coefficients[0] for v in groups[0]]
  return [first, *groups[1:]]


def _not_run(claim: claims.Claim) -> Judged:
  sweeps = tuple(sorted({curve.sweep for _, curve in claim.terms}))
  return Judged(claim, None, stats.INCONCLUSIVE, None, 0, sweeps, None)


def judge(workdir: str | None, claim: claims.Claim) -> Judged:
  """Measures ``claim`` on the runs under ``workdir`` (an experiments.reproduce WORKDIR;
  None: none, every sweep is missing)."""
  if workdir is None:
    return _not_run(claim)
  groups, missing, excluded, epochs = [], [], 0, None
  for _, curve in claim.terms:
    try:
      runs = measures.curve_runs(workdir, curve)
    except (FileNotFoundError, ValueError):
      missing.append(curve.sweep)
      continue
    epochs = measures.configured_epochs(workdir, curve)
    values = [measures.run_value(r, epochs, claim.measure) for r in runs]
    excluded += sum(np.isnan(values))
    groups.append(values)
  coefficients = [a for a, _ in claim.terms]
  if missing or any(all(np.isnan(g)) for g in groups):
    return Judged(
      claim, None, stats.INCONCLUSIVE, epochs, excluded, tuple(sorted(set(missing))), None
    )
  interval = stats.contrast(groups, coefficients)
  # A one-sided claim with a margin is the claim x - threshold > 0 (< 0) under the rule.
  tested = _shifted(groups, coefficients, claim.threshold)
  margin = claim.margin if claim.kind == 'within' else 0.0
  verdict = stats.verdict(stats.contrast(tested, coefficients), claim.kind, margin)
  needed = (
    stats.seeds_to_decide(tested, coefficients, claim.kind, margin)
    if verdict == stats.INCONCLUSIVE
    else None
  )
  return Judged(claim, interval, verdict, epochs, excluded, (), needed)
