"""The report of a tuning study (``report.md``, ``trials.png``), from ``tuning.json`` and
the reruns' ``metrics.jsonl``.

Until every run is finished, how many are (each optimizer's trials and reruns); the
winners and their validation accuracy, the winners' test accuracy over the rerun seeds
(the mean of the last sixth of the epochs, as the reproduction's ``final_accuracy``; mean
+- standard deviation, ddof 1), the expected best of k trials per optimizer, the study's
claims with Welch intervals over the rerun seeds, and a figure
of every trial's validation accuracy against each searched field (with matplotlib, the
``train`` extra). ``paste`` puts the report into another Markdown page, between
``PAGE_BEGIN`` and ``PAGE_END``.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from padam_jax import pages, stats
from padam_jax.reproduction import claims_table, measures
from padam_jax.rundir import runlog
from padam_jax.tuning import selection
from padam_jax.tuning.studies import Study

REPORT_FILE = 'report.md'
FIGURE_FILE = 'trials.png'
# A page that shows the report (docs/reproduction.md) holds it between these two lines.
PAGE_BLOCK = 'tuning-report'
PAGE_BEGIN, PAGE_END = pages.markers(PAGE_BLOCK)
_IMAGE = re.compile(r'!\[(?P<alt>[^\]]*)\]\((?P<target>[^)]+)\)')
_TEST_MEASURE = 'final_accuracy'


def _number(value: float | None, digits: int = 2) -> str:
  return 'diverged' if value is None or not math.isfinite(value) else f'{value:.{digits}f}'


def _fields(study: Study) -> list[str]:
  """Every searched field, in the order of the spaces."""
  return list(dict.fromkeys(d.field for space in study.spaces for d in space.dimensions))


Records = list[list[dict[str, Any]]]  # the metrics.jsonl records of each of some runs


def rerun_records(workdir: str, tuning: Mapping[str, Any]) -> dict[str, Records]:
  """Each optimizer's finished reruns' ``metrics.jsonl`` records, each file read once."""
  return {
    name: [
      runlog.read_metrics(os.path.join(workdir, rerun['dir']))
      for rerun in entry['reruns']
      if rerun['complete']
    ]
    for name, entry in tuning['optimizers'].items()
  }


def accuracies(records: Records, epochs: int, measure: str = _TEST_MEASURE) -> list[float]:
  """The test accuracy (%) of each run of ``records`` by ``measure`` (NaN: diverged)."""
  return [measures.run_value(run, epochs, measure) for run in records]


# The study's claims (docs/tuning.md): tuned Padam at least as good as tuned SGDM (not more
# than 1 point below), and above tuned Adam and AMSGrad; each by both test-accuracy measures.
CLAIMS = (('sgdm', 1.0), ('adam', 0.0), ('amsgrad', 0.0))
# A claim is read once each of its two optimizers has this many reruns that did not diverge.
MIN_SEEDS = 2
_CLAIM_MEASURES = ('final_accuracy', 'median_late_accuracy')


def claims_markdown(tuning: Mapping[str, Any], reruns: Mapping[str, Records]) -> list[str]:
  """The claims rows from the reruns' records (``rerun_records``): ``x = padam - other``
  over the rerun seeds, Welch's 95% interval, the verdict of ``x > -margin`` and, for an
  inconclusive one, the seeds per optimizer that would decide it if the means and spreads
  measured now stayed as they are."""
  lines = [
    '| claim | x, measured | seeds | ours [95% interval] | verdict | seeds for a verdict |',
    '|---|---|---|---|---|---|',
  ]
  found = tuning['optimizers']
  for other, margin in CLAIMS:
    words = (
      f'tuned Padam is at least as good as tuned {other}, not more than {margin:g} point below'
      if margin
      else f'tuned Padam is above tuned {other}'
    )
    for measure in _CLAIM_MEASURES:
      what = f'x = padam - {other}, {measures.describe_window(measure, tuning["epochs"])}'
      if 'padam' not in found or other not in found:
        lines.append(f'| {words} | {what} | - | not run | {stats.INCONCLUSIVE} | - |')
        continue
      groups = [
        [v for v in accuracies(reruns[name], tuning['epochs'], measure) if math.isfinite(v)]
        for name in ('padam', other)
      ]
      seeds = '/'.join(str(len(g)) for g in groups)
      if min(len(g) for g in groups) < MIN_SEEDS:
        lines.append(
          f'| {words} | {what} | {seeds} | fewer than {MIN_SEEDS} seeds | '
          f'{stats.INCONCLUSIVE} | - |'
        )
        continue
      interval = stats.contrast(groups, [1.0, -1.0])
      shifted = stats.shifted(groups, [1.0, -1.0], -margin)  # x + margin > 0
      verdict = stats.verdict(stats.contrast(shifted, [1.0, -1.0]), 'greater')
      needed = '-'
      if verdict == stats.INCONCLUSIVE:
        needed = claims_table.seeds_needed_cell(
          stats.seeds_to_decide(shifted, [1.0, -1.0], 'greater')
        )
      value = claims_table.interval_text(interval, 2)
      lines.append(f'| {words} | {what} | {seeds} | {value} | {verdict} | {needed} |')
  return lines


def markdown(study: Study, workdir: str, tuning: Mapping[str, Any], figure: str | None) -> str:
  """``report.md``: the progress, the winners, their reruns on the test set, the expected
  best of k, the claims."""
  epochs = tuning['epochs']
  found = tuning['optimizers']
  fields = _fields(study)
  first = epochs - selection.last_epochs(epochs, study.selection_share) + 1
  lines = [
    f'# Tuning study `{study.name}`',
    '',
    f'{study.description}. Each winner is the trial of the highest validation accuracy '
    f'(the mean of epochs {first}-{epochs} on the last {study.validation_size:,} training '
    'images, held out); the test set is read for the reruns alone.',
    '',
  ]
  under_way = _under_way(tuning)
  reruns = rerun_records(workdir, tuning)
  lines += _progress(study, tuning)
  lines += [
    '## Winners',
    '',
    f'| optimizer | trial | {" | ".join(fields)} | validation accuracy (%) | at an edge |',
    f'|---|---:|{"---:|" * len(fields)}---:|---|',
  ]
  for name, entry in found.items():
    winner = entry['trials'][entry['winner']]
    values = _setting_cells(entry['setting'], fields)
    lines.append(
      f'| {name} | {entry["winner"] + 1} of {len(entry["trials"])} | {" | ".join(values)} | '
      f'{_number(winner["validation_accuracy"])} | {", ".join(entry["on_edge"])} |'
    )
  if any(under_way.values()):
    lines += [
      '',
      '## The finished trials of the searches under way (no winner yet)',
      '',
      f'| optimizer | trial | {" | ".join(fields)} | validation accuracy (%) |',
      f'|---|---:|{"---:|" * len(fields)}---:|',
    ]
    for name, trials in under_way.items():
      for trial in trials:
        values = _setting_cells(trial['setting'], fields)
        lines.append(
          f'| {name} | {trial["index"] + 1} of {study.trials} | {" | ".join(values)} | '
          f'{_number(trial["validation_accuracy"])} |'
        )
  lines += [
    '',
    '## The winners on fresh seeds',
    '',
    f'Test accuracy (%), {measures.describe_window(_TEST_MEASURE, epochs)}: mean +- standard '
    'deviation (ddof 1) over the seeds.',
    '',
    '| optimizer | seeds | test accuracy (%) |',
    '|---|---|---:|',
  ]
  for name, entry in found.items():
    tests = np.asarray(accuracies(reruns[name], epochs), dtype=float)
    seeds = f'{len(tests)} of {len(entry["reruns"])}'
    if not len(tests):
      cell = 'not rerun yet'
    else:
      mean, std = measures.over_seeds(tests)
      cell = _number(float(mean)) + ('' if math.isnan(std) else f' +- {std:.2f}')
      diverged = int(np.sum(np.isnan(tests)))
      cell += f' ({diverged} diverged)' if diverged else ''
    lines.append(f'| {name} | {seeds} | {cell} |')
  lines += [
    '',
    '## Expected best of k trials',
    '',
    'Validation accuracy (%) of the best of k trials, averaged over every set of k of the '
    f'{study.trials} (a diverged trial counts as the worst).',
    '',
    f'| optimizer | {" | ".join(f"k={k}" for k in range(1, study.trials + 1))} |',
    f'|---|{"---:|" * study.trials}',
  ]
  for name, entry in found.items():
    scores = [_nan_if_none(t['validation_accuracy']) for t in entry['trials']]
    cells = [_number(selection.expected_best_of_k(scores, k)) for k in range(1, len(scores) + 1)]
    lines.append(f'| {name} | {" | ".join(cells)} |')
  lines += ['', '## Claims', '', *claims_markdown(tuning, reruns)]
  if figure:
    lines += ['', f'![validation accuracy of every trial]({os.path.basename(figure)})']
  return '\n'.join(lines) + '\n'


def _progress(study: Study, tuning: Mapping[str, Any]) -> list[str]:
  """How many of the study's runs are finished (a diverged one counts): overall, and each
  optimizer's trials and reruns; nothing once all of them are."""
  found, under_way = tuning['optimizers'], _under_way(tuning)
  rows, done = [], 0
  for space in study.spaces:
    name = space.optimizer
    trials = len(found[name]['trials']) if name in found else len(under_way.get(name, ()))
    reruns = sum(r['complete'] for r in found[name]['reruns']) if name in found else 0
    done += trials + reruns
    rows.append(f'| {name} | {trials} of {study.trials} | {reruns} of {len(study.rerun_seeds)} |')
  total = len(study.spaces) * (study.trials + len(study.rerun_seeds))
  if done == total:
    return []
  return [
    '## Progress',
    '',
    f'{done} of the study\'s {total} runs are finished; a claim is read once each of its two '
    f'optimizers has at least {MIN_SEEDS} reruns finished without diverging.',
    '',
    '| optimizer | trials finished | reruns finished |',
    '|---|---:|---:|',
    *rows,
    '',
  ]


def _nan_if_none(value: float | None) -> float:
  return math.nan if value is None else value


def _setting_cells(setting: Mapping[str, Any], fields: list[str]) -> list[str]:
  """A table row's cell per searched field: the setting's value, empty where not searched."""
  return [f'{setting[f]:.4g}' if f in setting else '' for f in fields]


def _under_way(tuning: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
  """The finished trials of each search under way (none in a record of an older version)."""
  return tuning.get('under_way', {})


def plot_trials(study: Study, tuning: Mapping[str, Any], output: str) -> str:
  """``trials.png``: each trial's validation accuracy against each searched field (one
  panel per field, a log axis where the field is searched on one), the winners ringed."""
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  fields = _fields(study)
  scales = {d.field: d.scale for space in study.spaces for d in space.dimensions}
  fig, axes = plt.subplots(1, len(fields), figsize=(5 * len(fields), 4), squeeze=False)
  # Every finished trial: an optimizer's whole search with its winner, or a search under way.
  searches = [
    (name, entry['trials'], entry['winner']) for name, entry in tuning['optimizers'].items()
  ]
  searches += [(f'{name} (under way)', trials, None) for name, trials in _under_way(tuning).items()]
  for ax, field in zip(axes[0], fields, strict=True):
    for name, trials, winner in searches:
      points = [
        (t['setting'][field], t['validation_accuracy'], i == winner)
        for i, t in enumerate(trials)
        if field in t['setting'] and t['validation_accuracy'] is not None
      ]
      if not points:
        continue
      xs, ys, won = zip(*points, strict=True)
      (line,) = ax.plot(xs, ys, 'o', label=name)
      best = [(x, y) for x, y, w in zip(xs, ys, won, strict=True) if w]
      if best:
        ax.plot(*zip(*best, strict=True), 'o', ms=14, mfc='none', color=line.get_color())
    ax.set_xscale('log' if scales[field] == 'log' else 'linear')
    ax.set_xlabel(field)
    ax.set_ylabel('validation accuracy (%)')
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle(f'{study.name}: every finished trial (ringed: the winners)')
  fig.tight_layout()
  fig.savefig(output, dpi=100)
  plt.close(fig)
  return output


def write(study: Study, workdir: str, tuning: Mapping[str, Any]) -> str:
  """Writes ``report.md`` (and ``trials.png`` when matplotlib is installed); returns the
  report's path."""
  figure = None
  drawn = tuning['optimizers'] or any(_under_way(tuning).values())
  if drawn and importlib.util.find_spec('matplotlib') is not None:
    figure = plot_trials(study, tuning, os.path.join(workdir, FIGURE_FILE))
  path = os.path.join(workdir, REPORT_FILE)
  runlog.write_atomically(path, markdown(study, workdir, tuning, figure))
  return path


def page_block(report_text: str, workdir: str, page: str) -> str:
  """``report_text`` (a ``report.md`` of ``workdir``) as a part of the Markdown page
  ``page``: without its title, each heading one level deeper, its images' relative paths
  made relative to the page's folder."""
  lines = report_text.rstrip('\n').split('\n')
  if lines and lines[0].startswith('# '):
    lines = lines[1:]
  folder = os.path.dirname(os.path.abspath(page))

  def relative(match: re.Match[str]) -> str:
    if re.match(r'[a-z][a-z0-9+.-]*:|/', match['target']):  # a URL or an absolute path
      return match[0]
    target = os.path.join(os.path.abspath(workdir), match['target'])
    return f'![{match["alt"]}]({os.path.relpath(target, folder)})'

  return '\n'.join(
    '#' + line if line.startswith('#') else _IMAGE.sub(relative, line) for line in lines
  ).strip('\n')


def _read(page: str) -> str:
  with open(page, encoding='utf-8') as f:
    return f.read()


def shown_block(page: str) -> str:
  """What ``page`` holds between its ``PAGE_BEGIN`` and ``PAGE_END`` lines (``ValueError``
  unless it has one of each, in that order)."""
  return pages.block(_read(page), PAGE_BLOCK, page)


def check_pages(paths: Sequence[str]) -> None:
  """``ValueError`` for the first of ``paths`` that has no one place for the report."""
  for page in paths:
    pages.check(_read(page), PAGE_BLOCK, page)


def paste(page: str, workdir: str) -> None:
  """Replaces what ``page`` holds between ``PAGE_BEGIN`` and ``PAGE_END`` by the report
  of ``workdir`` (``page_block`` of its ``report.md``)."""
  text = _read(page)
  block = page_block(_read(os.path.join(workdir, REPORT_FILE)), workdir, page)
  runlog.write_atomically(page, pages.replace(text, PAGE_BLOCK, block, page))
