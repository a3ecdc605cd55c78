"""Each claim judged on the runs under a workdir: its interval over seeds and its verdict.

A workdir's claims are those of the preset its runs recorded
(``measures.recorded_preset``); a claim whose terms name other protocols
(``Claim.sources``) reads their workdirs too. A claim's contrast gets the interval and the
rule of :mod:`padam_jax.stats` at the claim's confidence; a one-sided claim with a margin is
judged as ``x - threshold``. A measure read epoch by epoch judges every epoch at a
Bonferroni-corrected level: supported when every epoch is, contradicted when any epoch is.
A run that diverged or has not finished contributes no value (``Judged.excluded`` counts
them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

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
  # A measure read epoch by epoch: how many epochs were supported, contradicted, neither.
  by_epoch: tuple[int, int, int] | None = None


def _verdict(
  claim: claims.Claim, groups: list[list[float]], coefficients: list[float], confidence: float
) -> str:
  """The rule's verdict on ``groups``; a one-sided claim with a margin is the claim
  ``x - threshold > 0`` (< 0)."""
  tested = stats.shifted(groups, coefficients, claim.threshold)
  margin = claim.margin if claim.kind == 'within' else 0.0
  return stats.verdict(stats.contrast(tested, coefficients, confidence), claim.kind, margin)


def _by_epoch(
  claim: claims.Claim, runs: list[list[list[float]]], coefficients: list[float]
) -> tuple[str, tuple[int, int, int]]:
  """Every epoch judged at ``1 - (1 - confidence) / epochs``: supported when every epoch
  is, contradicted when any is; and the counts of each."""
  epochs = len(runs[0][0])
  level = 1 - (1 - claim.confidence) / epochs
  verdicts = [
    _verdict(claim, [[run[e] for run in group] for group in runs], coefficients, level)
    for e in range(epochs)
  ]
  counts = tuple(verdicts.count(v) for v in (stats.SUPPORTED, stats.CONTRADICTED))
  supported, contradicted = counts
  if contradicted:
    verdict = stats.CONTRADICTED
  elif supported == epochs:
    verdict = stats.SUPPORTED
  else:
    verdict = stats.INCONCLUSIVE
  return verdict, (supported, contradicted, epochs - supported - contradicted)


def _term_workdirs(
  claim: claims.Claim, workdir: str | None, workdirs: Mapping[str, str] | None
) -> list[str | None]:
  """The workdir each term of ``claim`` reads: ``workdir``, or for a claim with sources the
  workdir of its term's protocol (``workdir`` itself when it is of that protocol and
  ``workdirs`` lacks it)."""
  if not claim.sources:
    return [workdir] * len(claim.terms)
  found = dict(workdirs or {})
  if workdir is not None:
    found.setdefault(protocol_of(workdir), workdir)
  return [found.get(source) for source in claim.sources]


def judge_protocol(protocol: str, by_protocol: Mapping[str, str]) -> list[Judged]:
  """Every claim of ``protocol``, in its order, judged on ``by_protocol[protocol]`` (absent:
  every sweep is missing) and, for terms of other protocols, on theirs."""
  workdir = by_protocol.get(protocol)
  return [judge(workdir, claim, by_protocol) for claim in claims.CLAIM_SETS[protocol]]


def judge(
  workdir: str | None,
  claim: claims.Claim,
  workdirs: Mapping[str, str] | None = None,
  seeds: Sequence[int] | None = None,
) -> Judged:
  """Measures ``claim`` on the runs under ``workdir`` (an experiments.reproduce WORKDIR;
  None: none, every sweep is missing), a term of another protocol on ``workdirs[protocol]``;
  only the runs of ``seeds`` when given."""
  groups, missing, excluded, epochs = [], [], 0, None
  per_epoch = measures.MEASURES[claim.measure].per_epoch
  by_epoch: list[list[list[float]]] = []
  wheres = _term_workdirs(claim, workdir, workdirs)
  for term, (_, curve) in enumerate(claim.terms):
    where = wheres[term]
    label = f'{claim.sources[term]}: {curve.sweep}' if claim.sources else curve.sweep
    if where is None:
      missing.append(label)
      continue
    try:
      runs = measures.curve_runs(where, curve, seeds)
    except (FileNotFoundError, ValueError):
      missing.append(label)
      continue
    epochs = measures.configured_epochs(where, curve)
    values = [measures.run_value(r, epochs, claim.measure) for r in runs]
    excluded += sum(np.isnan(values))
    groups.append(values)
    if per_epoch:
      finished = [r for r, v in zip(runs, values, strict=True) if not np.isnan(v)]
      by_epoch.append([measures.run_values_by_epoch(r, epochs, claim.measure) for r in finished])
  coefficients = [a for a, _ in claim.terms]
  if missing or any(all(np.isnan(g)) for g in groups):
    return Judged(
      claim, None, stats.INCONCLUSIVE, epochs, excluded, tuple(sorted(set(missing))), None
    )
  interval = stats.contrast(groups, coefficients, claim.confidence)
  if per_epoch:
    verdict, counts = _by_epoch(claim, by_epoch, coefficients)
    return Judged(claim, interval, verdict, epochs, excluded, (), None, counts)
  verdict = _verdict(claim, groups, coefficients, claim.confidence)
  needed = (
    stats.seeds_to_decide(
      stats.shifted(groups, coefficients, claim.threshold),
      coefficients,
      claim.kind,
      claim.margin if claim.kind == 'within' else 0.0,
      claim.confidence,
    )
    if verdict == stats.INCONCLUSIVE
    else None
  )
  return Judged(claim, interval, verdict, epochs, excluded, (), needed)
