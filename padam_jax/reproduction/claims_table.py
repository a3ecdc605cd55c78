"""The claims table in Markdown (``claims.md``): a row per claim, our value with its
interval over seeds, the verdict, and the seeds a verdict would need; and Table 2's two
looks side by side.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

from padam_jax import stats
from padam_jax.reproduction import claims, judging, measures

RULE = (
  'Each row: x, a difference of per-run values averaged over seeds, with its 95% '
  'Welch t interval over seeds. Verdict: supported when the interval lies wholly on '
  'the claimed side (inside the margin), contradicted when it lies wholly on the '
  'other side (outside the margin), inconclusive otherwise or with one seed. '
  '"Seeds for a verdict": seeds per run at which the spread measured now would '
  'decide it. Every test-accuracy claim has two rows, the mean of the last sixth of '
  'the epochs (primary) and the median of the last third; where they disagree the '
  'claim is not settled at this scale. Rows read from Table 2\'s runs use 97.5% '
  'intervals (its seed count was set after a look at 3 seeds: each look gets half of '
  'the 5% error rate). A row read epoch by epoch judges every epoch at 95% '
  '(97.5% on Table 2\'s runs) divided by the epochs (Bonferroni): supported when every '
  'epoch is, contradicted when any epoch is. Multiplicity: each row\'s interval holds '
  'its own error rate; over the rows of a table some 5% intervals will miss by chance, '
  'so a single verdict decided by a bound close to its threshold is weak evidence.'
)


def signed(value: float, digits: int) -> str:
  """``value`` with a sign and ``digits`` decimals, more where fewer would show a non-zero
  value as zero (so that a deciding bound never reads +0.00)."""
  while digits < 8 and value != 0 and round(value, digits) == 0:
    digits += 1
  return f'{value:+.{digits}f}'


def interval_text(interval: stats.Interval, digits: int) -> str:
  """An interval with both bounds as 'estimate [low, high]', each ``signed``."""
  assert interval.low is not None and interval.high is not None
  bounds = f'[{signed(interval.low, digits)}, {signed(interval.high, digits)}]'
  return f'{signed(interval.estimate, digits)} {bounds}'


def claimed(claim: claims.Claim) -> str:
  """What is claimed of x, e.g. 'x > 0' or '-1 < x < 1'."""
  if claim.kind == 'within':
    return f'-{claim.margin:g} < x < {claim.margin:g}'
  return f'x {">" if claim.kind == "greater" else "<"} {claim.threshold:g}'


def value_cell(judged: judging.Judged) -> str:
  """Our x with its 95% interval, or why there is none."""
  if judged.missing:
    return 'not run: ' + ', '.join(judged.missing)
  if judged.interval is None:
    return 'no finished run'
  i, digits = judged.interval, measures.MEASURES[judged.claim.measure].decimals
  if i.low is None:
    return f'{signed(i.estimate, digits)} (no interval: 1 seed)'
  level = '' if judged.claim.confidence == claims.CONFIDENCE else f' {judged.claim.confidence:.1%}'
  if judged.by_epoch is not None:
    supported, contradicted, neither = judged.by_epoch
    side = 'below' if judged.claim.kind == 'less' else 'above'
    return (
      f'mean {signed(i.estimate, digits)}; {side} in {supported} of {sum(judged.by_epoch)} '
      f'epochs, the other way in {contradicted}, undecided in {neither}'
    )
  return interval_text(i, digits) + level


def measured(judged: judging.Judged) -> str:
  """The measure in words, its epochs where the runs exist."""
  measure = judged.claim.measure
  what = measures.MEASURES[measure].label
  if judged.epochs:
    what += ', ' + measures.describe_window(measure, judged.epochs)
  return what


def seeds_for_verdict(judged: judging.Judged) -> str:
  """Seeds per run needed for a verdict at the spread measured now ('-': decided or not run)."""
  if judged.verdict != stats.INCONCLUSIVE or judged.interval is None:
    return '-'
  if judged.interval.low is None:
    return 'a spread first (>= 2)'
  return seeds_needed_cell(judged.seeds_needed)


def seeds_needed_cell(count: int | None) -> str:
  """``stats.seeds_to_decide``'s answer in a table cell (None: no count up to 1000)."""
  return str(count) if count else 'more than 1000'


def seeds_cell(judged: judging.Judged) -> str:
  """Seeds per group that gave a value, and how many runs gave none."""
  seeds = '-' if judged.interval is None else '/'.join(str(n) for n in judged.interval.seeds)
  if judged.excluded:
    seeds += f' ({judged.excluded} diverged or unfinished)'
  return seeds


def markdown(judged: Sequence[judging.Judged], protocol: str) -> str:
  """The claims table of ``protocol`` from its claims as judged: one row per claim, our
  value with its interval and a verdict."""
  lines = [
    f'| claim ({claims.PROTOCOLS[protocol].source}) | measured | claimed | seeds | '
    'ours [95% interval] | verdict | seeds for a verdict |',
    '|---|---|---|---|---|---|---|',
  ]
  for one in judged:
    claim = one.claim
    lines.append(
      f'| {claim.claim} | x = {claim.contrast}, {measured(one)} | {claimed(claim)} | '
      f'{seeds_cell(one)} | {value_cell(one)} | {one.verdict} | {seeds_for_verdict(one)} |'
    )
  return '\n'.join(lines)


def protocol_line(protocol: str) -> str:
  """Whose claims, under which preset, in one sentence."""
  p = claims.PROTOCOLS[protocol]
  return f'Claims of {p.source}, under the `{protocol}` preset ({p.settings}).'


def two_looks_markdown(workdir: str) -> str:
  """Table 2's rows of the student reproduction at its two looks (3 and 5 seeds), each at
  97.5%, beside the 95% verdict at 5 seeds that ignores the first look."""
  lines = [
    '| claim | x, measured | look 1: 3 seeds, 97.5% | look 2: 5 seeds, 97.5% | '
    '5 seeds at 95% (no correction) | the correction changes the verdict |',
    '|---|---|---|---|---|---|',
  ]
  for claim in claims.CLAIMS:
    if claim.confidence != claims.TWO_LOOKS_CONFIDENCE:
      continue
    first = judging.judge(workdir, claim, seeds=range(3))
    second = judging.judge(workdir, claim, seeds=range(5))
    plain = judging.judge(workdir, dataclasses.replace(claim, confidence=claims.CONFIDENCE))
    changed = 'yes' if plain.verdict != second.verdict else 'no'
    lines.append(
      f'| {claim.claim} | x = {claim.contrast}, {measured(second)} | '
      f'{value_cell(first)}: {first.verdict} | {value_cell(second)}: {second.verdict} | '
      f'{value_cell(plain)}: {plain.verdict} | {changed} |'
    )
  return '\n'.join(lines)


def write(
  workdir: str,
  output_dir: str,
  workdirs: Mapping[str, str] | None = None,
  judged: Sequence[judging.Judged] | None = None,
) -> str:
  """The claims table of ``workdir`` (the claims of the preset its runs recorded), also
  written with its rule to ``output_dir/claims.md``; ``judged``: those claims already
  judged (``judging.judge_protocol``), else they are judged here."""
  protocol = judging.protocol_of(workdir)
  if judged is None:
    judged = judging.judge_protocol(protocol, {**(workdirs or {}), protocol: workdir})
  table = markdown(judged, protocol)
  os.makedirs(output_dir, exist_ok=True)
  with open(os.path.join(output_dir, 'claims.md'), 'w', encoding='utf-8') as f:
    f.write(f'{protocol_line(protocol)}\n\n{RULE}\n\n{table}\n')
  return table
