"""The reproduction's Markdown tables, from runs' ``metrics.jsonl`` alone.

A cell over seeds reads ``mean +- std`` (``measures.over_seeds``), one seed's value
alone, or 'diverged' when no run gave one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from padam_jax.reproduction import measures, suites

TABLES_FILE = 'tables.md'


def _cell(values: Iterable[float]) -> str:
  values = [v for v in values if not math.isnan(v)]
  if not values:
    return 'diverged'
  if len(values) == 1:
    return f'{values[0]:.2f}'
  mean, std = measures.over_seeds(values)
  return f'{mean:.2f} +- {std:.2f}'


def table2_markdown(workdir: str) -> str:
  """Wide ResNet test accuracy (%) at 1/4, 1/2, 3/4 and the end of the run, beside the
  reproduction's CIFAR-10 numbers, and averaged over the last sixth of the epochs."""
  curves = suites.SUITES['table2'].panels[0].curves
  total = measures.configured_epochs(workdir, curves[0])
  epochs = [max(1, round(total * q / 4)) for q in (1, 2, 3, 4)]
  rows = []
  for curve in curves:
    runs = measures.curve_runs(workdir, curve)
    accuracy = np.full((len(runs), total), np.nan)  # epochs not run (diverged) stay NaN
    measured = 100 * (1 - measures.metric_matrix(runs, 'test_error'))[:, :total]
    accuracy[:, : measured.shape[1]] = measured
    cells = [
      f'{_cell(accuracy[:, e - 1])} ({seed:.2f})'
      for e, seed in zip(epochs, suites.REPRODUCTION_TABLE2[curve.label], strict=True)
    ]
    final = _cell([measures.run_value(r, total, 'final_accuracy') for r in runs])
    rows.append(f'| {curve.label} | ' + ' | '.join(cells) + f' | {final} | {len(runs)} |')
  header = ' | '.join(
    f'epoch {e} (CIFAR-10: {s})'
    for e, s in zip(epochs, suites.REPRODUCTION_TABLE2_EPOCHS, strict=True)
  )
  first = total - measures.last_epochs(total) + 1
  rows.append('')
  rows.append(_flattening(workdir, curves, total))
  return '\n'.join(
    [
      f'| optimizer | {header} | mean of epochs {first}-{total} | seeds |',
      '|---|' + '---:|' * 6,
      *rows,
    ]
  )


def _flattening(workdir: str, curves: Sequence[suites.Curve], total: int) -> str:
  """How much each curve's train loss (mean over seeds) fell over its last two epochs."""
  if total < 3:
    return 'Train loss over the last two epochs: too few epochs to tell.'
  parts = []
  for curve in curves:
    loss, _ = measures.over_seeds(
      measures.metric_matrix(measures.curve_runs(workdir, curve), 'train_loss')
    )
    if loss.size < total or np.isnan(loss[[total - 3, total - 1]]).any():
      parts.append(f'{curve.label} unfinished')
      continue
    before, after = loss[total - 3], loss[total - 1]
    parts.append(f'{curve.label} {after:.4f} ({100 * (after - before) / before:+.1f}%)')
  return (
    f'Train loss at epoch {total} (mean over seeds) and its change since epoch '
    f'{total - 2}: ' + ', '.join(parts) + '.'
  )


def final_table_markdown(workdir: str, suite: suites.Suite) -> str:
  """Per curve: final train loss and test error (mean +- std over seeds)."""
  lines = [
    '| run | final train loss | final test error (%) | best test error (%) | seeds |',
    '|---|---:|---:|---:|---:|',
  ]
  for panel in suite.panels:
    for curve in panel.curves:
      try:
        runs = measures.curve_runs(workdir, curve)
      except FileNotFoundError:
        lines.append(f'| {curve.label} | not run | not run | not run | 0 |')
        continue
      loss, error = (
        measures.metric_matrix(runs, 'train_loss'),
        100 * measures.metric_matrix(runs, 'test_error'),
      )
      best = measures.nan_reduce(np.nanmin, error.T)
      lines.append(
        f'| {curve.label} | {_cell(loss[:, -1])} | {_cell(error[:, -1])} | '
        f'{_cell(best)} | {len(runs)} |'
      )
  return '\n'.join(lines)


def write(tables: Mapping[str, str], output_dir: str) -> str | None:
  """Writes ``tables`` (``{suite: table}``), each under its suite's heading, to
  ``output_dir/tables.md``; returns its path (None, and nothing written, without tables)."""
  if not tables:
    return None
  path = os.path.join(output_dir, TABLES_FILE)
  with open(path, 'w', encoding='utf-8') as f:
    f.write('\n'.join(f'### {name}\n\n{table}\n' for name, table in tables.items()))
  return path
