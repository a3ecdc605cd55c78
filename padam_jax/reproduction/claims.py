"""The student reproduction's checkable claims, judged from runs' ``metrics.jsonl`` by an interval.

A :class:`Claim` is a linear contrast of per-run quantities over curves of the
reproduction (:class:`padam_jax.reproduction.suites.Curve`), a claimed direction or margin, and the
rule of :mod:`padam_jax.stats`. Two quantities are measured per run:

* ``final_accuracy``: test accuracy (%) averaged over the last sixth of the configured
  epochs (at least one): under a constant learning rate a single epoch's accuracy swings
  by several points, the average settles;
* ``mean_train_loss``: the training loss averaged over every epoch, the height of the
  whole training curve ("lowest during training").

A run that diverged or has not finished contributes no value (the table counts them).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from padam_jax import stats
from padam_jax.reproduction import report, suites

MEASURES = {  # what is measured, and over which epochs
  'final_accuracy': ('test accuracy (%)', 'mean of epochs {first}-{epochs}'),
  'mean_train_loss': ('train loss', 'mean over all {epochs} epochs'),
}
RULE = (
  'Each row: x, a difference of per-run values averaged over seeds, with its 95% '
  'Welch t interval over seeds. Verdict: supported when the interval lies wholly on '
  'the claimed side (inside the margin), contradicted when it lies wholly on the '
  'other side (outside the margin), inconclusive otherwise or with one seed. '
  '"Seeds for a verdict": seeds per run at which the spread measured now would '
  'decide it.'
)
EQUIVALENCE_MARGIN = 1.0  # accuracy points: "within 1 point" (the reproduction's Table 2 reading)


@dataclasses.dataclass(frozen=True)
class Claim:
  """``sum(coefficient * mean over seeds of measure(curve))`` is claimed ``kind``."""

  claim: str  # the reproduction's words, short, and where it says so
  measure: str  # a key of MEASURES
  terms: tuple[tuple[float, suites.Curve], ...]
  kind: str  # stats.KINDS
  margin: float = 0.0
  contrast: str = ''  # how the contrast reads, e.g. 'padam - adam'


def _pair(
  claim: str,
  measure: str,
  kind: str,
  first: suites.Curve,
  second: suites.Curve,
  margin: float = 0.0,
) -> Claim:
  return Claim(
    claim, measure, ((1.0, first), (-1.0, second)), kind, margin, f'{first.label} - {second.label}'
  )


def _p_lr(p: float, lr: float) -> suites.Curve:
  return suites.Curve(
    f'p 1/{round(1 / p)} lr {lr:g}', 'resnet18-padam-p-lr', (('partial', p), ('learning_rate', lr))
  )


def _claims() -> tuple[Claim, ...]:
  wrn = {c.label: c for c in suites.optimizer_curves('wrn16_4')}
  rows = [
    *(
      _pair(
        'Padam is within 1 point of Adam and AMSGrad on WRN (Table 2)',
        'final_accuracy',
        'within',
        wrn['padam'],
        wrn[other],
        EQUIVALENCE_MARGIN,
      )
      for other in ('adam', 'amsgrad')
    ),
    _pair(
      'Padam is above SGDM on WRN (Table 2)', 'final_accuracy', 'greater', wrn['padam'], wrn['sgdm']
    ),
  ]
  for model in ('wrn16_4', 'resnet18'):
    curves = {c.label: c for c in suites.optimizer_curves(model)}
    rows += [
      _pair(
        f'Padam\'s train loss is the lowest on {model} (Figure 1)',
        'mean_train_loss',
        'less',
        curves['padam'],
        curves[other],
      )
      for other in ('sgdm', 'adam', 'amsgrad')
    ]
  sixteenth, eighth, quarter = 0.0625, 0.125, 0.25
  rows += [
    _pair(
      'At lr 0.1, p = 1/16 beats p = 1/8 (Section 3.5)',
      'final_accuracy',
      'greater',
      _p_lr(sixteenth, 0.1),
      _p_lr(eighth, 0.1),
    ),
    Claim(
      'Small p prefers a large lr, p near 1/2 a small one (Figure 3)',
      'final_accuracy',
      (
        (1.0, _p_lr(sixteenth, 0.1)),
        (-1.0, _p_lr(sixteenth, 0.001)),
        (-1.0, _p_lr(quarter, 0.1)),
        (1.0, _p_lr(quarter, 0.001)),
      ),
      'greater',
      contrast='(p 1/16: lr 0.1 - lr 0.001) - (p 1/4: lr 0.1 - lr 0.001)',
    ),
    _pair(
      'The p schedule (1/4 -> 1/16, lr 0.01 -> 0.1) beats fixed p (the reproduction\'s proposal)',
      'final_accuracy',
      'greater',
      suites.Curve('p schedule', 'resnet18-padam-p-schedule'),
      suites.padam_curve('resnet18', 'p 1/8 lr 0.1'),
    ),
  ]
  return tuple(rows)


CLAIMS = _claims()


@dataclasses.dataclass(frozen=True)
class Judged:
  """A claim as measured: its interval, verdict, and what was missing."""

  claim: Claim
  interval: stats.Interval | None
  verdict: str
  epochs: int | None
  excluded: int  # runs that diverged or have not finished
  missing: tuple[str, ...]  # sweeps not trained at all
  seeds_needed: int | None


def judge(workdir: str, claim: Claim) -> Judged:
  """Measures ``claim`` on the runs under ``workdir`` (an experiments.reproduce WORKDIR)."""
  groups, missing, excluded, epochs = [], [], 0, None
  for _, curve in claim.terms:
    try:
      runs = report.curve_runs(workdir, curve)
    except (FileNotFoundError, ValueError):
      missing.append(curve.sweep)
      continue
    epochs = report.configured_epochs(workdir, curve)
    values = [report.run_value(r, epochs, claim.measure) for r in runs]
    excluded += sum(np.isnan(values))
    groups.append(values)
  coefficients = [a for a, _ in claim.terms]
  if missing or any(all(np.isnan(g)) for g in groups):
    return Judged(
      claim, None, stats.INCONCLUSIVE, epochs, excluded, tuple(sorted(set(missing))), None
    )
  interval = stats.contrast(groups, coefficients)
  verdict = stats.verdict(interval, claim.kind, claim.margin)
  needed = (
    stats.seeds_to_decide(groups, coefficients, claim.kind, claim.margin)
    if verdict == stats.INCONCLUSIVE
    else None
  )
  return Judged(claim, interval, verdict, epochs, excluded, (), needed)


def _claimed(claim: Claim) -> str:
  if claim.kind == 'within':
    return f'-{claim.margin:g} < x < {claim.margin:g}'
  return 'x > 0' if claim.kind == 'greater' else 'x < 0'


def _ours(judged: Judged, digits: int) -> str:
  if judged.missing:
    return 'not run: ' + ', '.join(judged.missing)
  if judged.interval is None:
    return 'no finished run'
  i = judged.interval
  if i.low is None:
    return f'{i.estimate:+.{digits}f} (no interval: 1 seed)'
  return f'{i.estimate:+.{digits}f} [{i.low:+.{digits}f}, {i.high:+.{digits}f}]'


def _measured(judged: Judged) -> str:
  epochs = judged.epochs
  what, over = MEASURES[judged.claim.measure]
  if epochs:
    what += ', ' + over.format(first=epochs - report.last_epochs(epochs) + 1, epochs=epochs)
  return f'x = {judged.claim.contrast}, {what}'


def _seeds_for_verdict(judged: Judged) -> str:
  """Seeds per run needed for a verdict at the spread measured now ('-': decided or not run)."""
  if judged.verdict != stats.INCONCLUSIVE or judged.interval is None:
    return '-'
  if judged.interval.low is None:
    return 'a spread first (>= 2)'
  return str(judged.seeds_needed) if judged.seeds_needed else 'more than 1000'


def markdown(workdir: str) -> str:
  """The claims table: one row per claim, our value with its 95% interval and a verdict."""
  lines = [
    '| claim (the reproduction) | measured | claimed | seeds | ours [95% interval] | verdict '
    '| seeds for a verdict |',
    '|---|---|---|---|---|---|---|',
  ]
  for claim in CLAIMS:
    judged = judge(workdir, claim)
    digits = 2 if claim.measure == 'final_accuracy' else 3
    seeds = '-' if judged.interval is None else '/'.join(str(n) for n in judged.interval.seeds)
    if judged.excluded:
      seeds += f' ({judged.excluded} diverged or unfinished)'
    needed = _seeds_for_verdict(judged)
    lines.append(
      f'| {claim.claim} | {_measured(judged)} | {_claimed(claim)} | {seeds} | '
      f'{_ours(judged, digits)} | {judged.verdict} | {needed} |'
    )
  return '\n'.join(lines)


def write(workdir: str, output_dir: str) -> str:
  """The claims table of ``workdir``, also written with its rule to ``output_dir/claims.md``."""
  table = markdown(workdir)
  os.makedirs(output_dir, exist_ok=True)
  with open(os.path.join(output_dir, 'claims.md'), 'w', encoding='utf-8') as f:
    f.write(f'{RULE}\n\n{table}\n')
  return table
