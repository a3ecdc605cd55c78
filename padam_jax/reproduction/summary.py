"""What a reader sees first: every claim of every protocol and its verdict in plain words,
then the figures.

Each workdir holds the runs of one preset, and the preset its runs recorded picks the
claims judged on it (``claims.PROTOCOLS``): the student reproduction's under
``reproduction``, Chen & Gu's under ``paper``. A row whose sweeps are not all committed
reads 'not run yet' and names them. A claim judged by two measures (test accuracy: the
mean of the last sixth and the median of the last third) is held or not held only when
both say so; otherwise it cannot be told at this scale, and the row says why: the seeds
it would need, or that the measures disagree.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

from padam_jax import stats
from padam_jax.reproduction import claims, claims_table, judging, measures, report, suites

HELD, NOT_HELD, CANNOT_TELL = 'held', 'not held', 'cannot be told at this scale'
NOT_RUN = 'not run yet'
_SHORT = {CANNOT_TELL: 'cannot tell'}  # the one-line table's word, under a heading naming the scale
_WORDS = {stats.SUPPORTED: HELD, stats.CONTRADICTED: NOT_HELD}
SUMMARY_FILE = 'summary.md'


def _grouped(judged: Sequence[judging.Judged]) -> list[list[judging.Judged]]:
  """The rows of one claim (one per measure) together, in their order."""
  groups: dict[claims.Claim, list[judging.Judged]] = {}
  for one in judged:
    groups.setdefault(dataclasses.replace(one.claim, measure=''), []).append(one)
  return list(groups.values())


def judge_all(by_protocol: Mapping[str, str]) -> dict[str, list[judging.Judged]]:
  """Every protocol's claims judged once, on the workdirs of ``by_protocol`` (a protocol
  without one: its sweeps are missing); both tables and the claims pages read these."""
  return {protocol: judging.judge_protocol(protocol, by_protocol) for protocol in claims.CLAIM_SETS}


def _window(judged: judging.Judged) -> str:
  assert judged.epochs is not None, 'a claim with an interval was measured over epochs'
  return measures.describe_window(judged.claim.measure, judged.epochs)


def _finding(judged: judging.Judged) -> str:
  """One measure's finding: its window, our value and interval, and what it says."""
  word = _WORDS.get(judged.verdict)
  if word is None:
    needed = claims_table.seeds_for_verdict(judged)
    word = 'no spread: 1 seed' if needed.startswith('a spread') else f'needs {needed} seeds'
  return f'{_window(judged)}: {claims_table.value_cell(judged)}, {word}'


def plain_verdict(judged: Sequence[judging.Judged]) -> tuple[str, str]:
  """``(verdict, why)`` of one claim judged by one or more measures: not run yet (and the
  sweeps it waits for), held or not held when every measure says so, else cannot be told
  at this scale (too few seeds, or the measures disagree)."""
  missing = sorted({s for j in judged for s in j.missing})
  if missing:
    return NOT_RUN, 'waits for ' + ', '.join(missing)
  if any(j.interval is None for j in judged):
    return CANNOT_TELL, 'no finished run'
  findings = '; '.join(_finding(j) for j in judged)
  verdicts = {j.verdict for j in judged}
  if len(verdicts) > 1:
    return CANNOT_TELL, f'{_which_shows_what(judged)}: {findings}'
  return _WORDS.get(judged[0].verdict, CANNOT_TELL), findings


def _which_shows_what(judged: Sequence[judging.Judged]) -> str:
  """Which measures show the claim, and which its opposite, e.g. 'only the mean of epochs
  26-30 shows it'."""
  parts = []
  for verdict, shows in ((stats.SUPPORTED, 'it'), (stats.CONTRADICTED, 'the opposite')):
    windows = [_window(j) for j in judged if j.verdict == verdict]
    if windows:
      verb = 'shows' if len(windows) == 1 else 'show'
      parts.append(f'only the {" and the ".join(windows)} {verb} {shows}')
  return 'the measures disagree, ' + '; '.join(parts)


def workdirs_by_protocol(workdirs: Sequence[str]) -> dict[str, str]:
  """``{protocol: workdir}`` from the preset each workdir's runs recorded; at most one
  workdir per protocol."""
  found: dict[str, str] = {}
  for workdir in workdirs:
    preset = measures.recorded_preset(workdir)
    if preset is None:
      raise ValueError(f'{workdir} holds no run of the reproduction\'s sweeps')
    protocol = judging.protocol_of(workdir)
    if protocol in found:
      raise ValueError(f'{found[protocol]} and {workdir} both hold runs of the {preset!r} preset')
    found[protocol] = workdir
  return found


def markdown(judged_by_protocol: Mapping[str, Sequence[judging.Judged]]) -> str:
  """The table (from ``judge_all``): a row per claim and protocol, its verdict in plain
  words and why."""
  lines = [
    '| protocol | claim | x, claimed | seeds | verdict | why |',
    '|---|---|---|---|---|---|',
  ]
  for protocol, rows in judged_by_protocol.items():
    name = f'{claims.PROTOCOLS[protocol].source} (`{protocol}` preset)'
    for judged in _grouped(rows):
      verdict, why = plain_verdict(judged)
      first = judged[0].claim
      what = measures.MEASURES[first.measure].label
      lines.append(
        f'| {name} | {first.claim} | x = {first.contrast}, {what}; {claims_table.claimed(first)} | '
        f'{claims_table.seeds_cell(judged[0])} | {verdict} | {why} |'
      )
  return '\n'.join(lines)


def _claimed_sweeps(protocol: str) -> set[str]:
  return {curve.sweep for claim in claims.CLAIM_SETS[protocol] for _, curve in claim.terms}


def drawn_suites(protocol: str) -> list[str]:
  """The suites whose figures a protocol's section shows: those made of its claims' sweeps
  alone (Chen & Gu's four optimizers side by side on each network, not the student's
  figures, which draw Padam's p grids that no paper claim reads)."""
  claimed = _claimed_sweeps(protocol)
  return [name for name in suites.SUITE_NAMES if set(suites.SUITES[name].sweeps) <= claimed]


def compact_markdown(judged_by_protocol: Mapping[str, Sequence[judging.Judged]]) -> str:
  """One line per claim, a column per network: the claim's verdict there over every
  contrast and measure (a word shared by all, else each contrast's), for a reader's first
  look; '-' where the claim is not made of that network."""
  networks = list(claims.NETWORK_NAMES)
  header = ['claim', 'whose', *claims.NETWORK_NAMES.values()]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for protocol, rows in judged_by_protocol.items():
    cells: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for judged in _grouped(rows):
      first = judged[0].claim
      by_network = cells.setdefault(first.row, {})
      by_network.setdefault(first.network, []).append((first.cell_label, plain_verdict(judged)[0]))
    for row, by_network in cells.items():
      words = [_cell(by_network.get(network, [])) for network in networks]
      lines.append(f'| {row} | {claims.PROTOCOLS[protocol].source} | {" | ".join(words)} |')
  return '\n'.join(lines)


def _cell(found: Sequence[tuple[str, str]]) -> str:
  """One network's verdicts over a claim's contrasts: the word they share, else each's."""
  short = [(label, _SHORT.get(verdict, verdict)) for label, verdict in found]
  words = {verdict for _, verdict in short}
  if len(words) == 1:
    return words.pop()
  return '; '.join(f'{label}: {verdict}' for label, verdict in short) or '-'


def _figures(
  protocol: str, workdir: str | None, output_dir: str, judged: Sequence[judging.Judged]
) -> list[str]:
  """Draws ``workdir``'s figures into ``output_dir/<protocol>/`` (with its claims.md and
  tables.md); Markdown lines that show them and name the suites not run."""
  source = claims.PROTOCOLS[protocol].source
  lines = [f'### {source}, the `{protocol}` preset', '']
  relevant = drawn_suites(protocol)
  if workdir is None:
    return [*lines, 'Not run.', '']
  folder = os.path.join(output_dir, protocol)
  built = report.build(workdir, relevant, folder, partial=True)
  claims_table.write(workdir, folder, judged=judged)
  for name in relevant:
    for key in (name, f'{name}_heatmap'):
      if key in built:
        lines.append(f'![{suites.SUITES[name].description}]({protocol}/{key}.png)')
        lines.append('')
  not_run = [name for name in relevant if name not in built]
  if not_run:
    lines += [f'Not run: {", ".join(not_run)}.', '']
  if any(key.endswith('_table') for key in built):
    lines += [f'Tables: [{protocol}/tables.md]({protocol}/tables.md).', '']
  lines += [f'Every row with its interval: [{protocol}/claims.md]({protocol}/claims.md).', '']
  return lines


def replace_tables(path: str, tables: Sequence[str]) -> list[str]:
  """Replaces, in the Markdown page ``path``, each table that starts with the header line
  of one of ``tables`` by that table; returns the headers it replaced. ``ValueError`` if
  the page holds none of them."""
  with open(path, encoding='utf-8') as f:
    lines = f.read().split('\n')
  replaced = []
  for table in tables:
    new = table.split('\n')
    start = next((i for i, line in enumerate(lines) if line == new[0]), None)
    if start is None:
      continue
    end = start
    while end < len(lines) and lines[end].startswith('|'):
      end += 1
    lines[start:end] = new
    replaced.append(new[0])
  if not replaced:
    headers = ' or '.join(repr(table.split('\n')[0]) for table in tables)
    raise ValueError(f'{path} holds no verdict table to replace: no line reads {headers}')
  with open(path, 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines))
  return replaced


def write(workdirs: Sequence[str], output_dir: str, paste_into: Sequence[str] = ()) -> str:
  """The summary of ``workdirs`` (at most one per preset): the table and the figures,
  written to ``output_dir/summary.md`` (figures and per-protocol claims in
  ``output_dir/<protocol>/``); returns the table. Each page of ``paste_into`` gets the
  tables it holds (the one-line table, the full one) replaced by the new ones."""
  by_protocol = workdirs_by_protocol(workdirs)
  judged = judge_all(by_protocol)
  table, compact = markdown(judged), compact_markdown(judged)
  lines = [
    '## In short: one line per claim',
    '',
    compact,
    '',
    '## Every claim and its verdict',
    '',
    'Verdicts in plain words: held (every measure shows the claim with 95% confidence), '
    'not held (every measure shows the opposite), cannot be told at this scale, with why, '
    'or not run yet, with the sweeps it waits for. ' + claims_table.RULE,
    '',
    table,
    '',
  ]
  if 'reproduction' in by_protocol:
    lines += [
      '## Table 2\'s two looks',
      '',
      'Table 2\'s seed count (5) was set after a look at 3 seeds. Its rows, at each look '
      'with half of the 5% error rate, beside the uncorrected 95% reading:',
      '',
      claims_table.two_looks_markdown(by_protocol['reproduction']),
      '',
    ]
  lines += ['## Figures (mean +- std over seeds, ddof 1)', '']
  os.makedirs(output_dir, exist_ok=True)
  for protocol in claims.CLAIM_SETS:
    lines += _figures(protocol, by_protocol.get(protocol), output_dir, judged[protocol])
  with open(os.path.join(output_dir, SUMMARY_FILE), 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines).rstrip() + '\n')
  for page in paste_into:
    replace_tables(page, [compact, table])
  return table
