"""The claims table in Markdown (``claims.md``): a row per claim, our value with its 95%
interval over seeds, the verdict, and the seeds a verdict would need.
"""

from __future__ import annotations

import os

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
  'claim is not settled at this scale.'
)


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
    return f'{i.estimate:+.{digits}f} (no interval: 1 seed)'
  return f'{i.estimate:+.{digits}f} [{i.low:+.{digits}f}, {i.high:+.{digits}f}]'


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
  return str(judged.seeds_needed) if judged.seeds_needed else 'more than 1000'


def seeds_cell(judged: judging.Judged) -> str:
  """Seeds per group that gave a value, and how many runs gave none."""
  seeds = '-' if judged.interval is None else '/'.join(str(n) for n in judged.interval.seeds)
  if judged.excluded:
    seeds += f' ({judged.excluded} diverged or unfinished)'
  return seeds


def markdown(workdir: str, protocol: str | None = None) -> str:
  """The claims table of ``protocol`` (default: ``workdir``'s): one row per claim, our
  value with its 95% interval and a verdict."""
  protocol = protocol or judging.protocol_of(workdir)
  lines = [
    f'| claim ({claims.PROTOCOLS[protocol].source}) | measured | claimed | seeds | '
    'ours [95% interval] | verdict | seeds for a verdict |',
    '|---|---|---|---|---|---|---|',
  ]
  for claim in claims.CLAIM_SETS[protocol]:
    judged = judging.judge(workdir, claim)
    lines.append(
      f'| {claim.claim} | x = {claim.contrast}, {measured(judged)} | {claimed(claim)} | '
      f'{seeds_cell(judged)} | {value_cell(judged)} | {judged.verdict} | '
      f'{seeds_for_verdict(judged)} |'
    )
  return '\n'.join(lines)


def protocol_line(protocol: str) -> str:
  """Whose claims, under which preset, in one sentence."""
  p = claims.PROTOCOLS[protocol]
  return f'Claims of {p.source}, under the `{protocol}` preset ({p.settings}).'


def write(workdir: str, output_dir: str) -> str:
  """The claims table of ``workdir`` (the claims of the preset its runs recorded), also
  written with its rule to ``output_dir/claims.md``."""
  protocol = judging.protocol_of(workdir)
  table = markdown(workdir, protocol)
  os.makedirs(output_dir, exist_ok=True)
  with open(os.path.join(output_dir, 'claims.md'), 'w', encoding='utf-8') as f:
    f.write(f'{protocol_line(protocol)}\n\n{RULE}\n\n{table}\n')
  return table
