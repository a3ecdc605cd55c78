"""Figures and Markdown tables of the reproduction's suites, from runs' ``metrics.jsonl`` alone.

Each :class:`padam_jax.reproduction.suites.Curve` selects the runs of one sweep directory; their
seeds give the mean and the standard deviation drawn as a shaded band. A diverged run
(``"diverged": true``) contributes no values from that epoch on and is marked as such.
"""

from __future__ import annotations

import importlib.util
import math
import os
import textwrap
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from padam_jax.reproduction import measures, suites

METRICS = (('train_loss', 'train loss', 1.0), ('test_error', 'test error (%)', 100.0))


def _pyplot():
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  return plt


def plot_panels(workdir: str, suite: suites.Suite, output: str, partial: bool = False) -> str:
  """The reproduction's layout: a column per panel, a row per metric, a line per curve (+-std).

  ``partial``: curves whose runs do not exist are left out and named in their panel's title
  ('not run'), instead of raising.
  """
  plt = _pyplot()
  columns = len(suite.panels)
  width = max(4.2 * columns, 6.0)
  fig, axes = plt.subplots(2, columns, figsize=(width, 7), squeeze=False)
  for col, panel in enumerate(suite.panels):
    title, missing = panel.title, []
    # A curve's colour is its place in the panel, so that a curve not run yet does not
    # recolour the others and the same line has the same colour in every panel.
    for place, curve in enumerate(panel.curves):
      try:
        runs = measures.curve_runs(workdir, curve)
      except (FileNotFoundError, ValueError):
        if not partial:
          raise
        missing.append(curve.label)
        continue
      diverged = sum(bool(r and r[-1].get('diverged')) for r in runs)
      label = curve.label + (f' ({diverged}/{len(runs)} diverged)' if diverged else '')
      for row, (key, _name, factor) in enumerate(METRICS):
        matrix = factor * measures.metric_matrix(runs, key)
        mean, std = measures.over_seeds(matrix)
        epochs = np.arange(1, mean.size + 1)
        ax = axes[row, col]
        ax.plot(epochs, mean, label=label, color=f'C{place}')
        if len(runs) > 1:
          ax.fill_between(epochs, mean - std, mean + std, color=f'C{place}', alpha=0.2)
        ax.grid(alpha=0.3)
    if missing:
      title += '\nnot run: ' + ', '.join(missing)
    for row, (_, name, _) in enumerate(METRICS):
      axes[row, col].set(xlabel='epoch', ylabel=name, title=title)
    if len(missing) < len(panel.curves):
      axes[0, col].set_yscale('log')
      axes[0, col].legend(fontsize=8)
  fig.suptitle(textwrap.fill(suite.description, int(12 * width)), fontsize=10)
  fig.tight_layout()
  fig.savefig(output, dpi=110)
  plt.close(fig)
  return output


def heatmap_cells(
  workdir: str, sweep_name: str
) -> tuple[list[float], list[float], np.ndarray, np.ndarray]:
  """``(ps, lrs, final test error % [p, lr], diverged counts)``: the error is the mean over
  seeds of each finished run's mean over the last sixth of its epochs (NaN: none
  finished, or every run diverged)."""
  ps, lrs = list(suites.PARTIALS), list(suites.LEARNING_RATES)
  error = np.full((len(ps), len(lrs)), np.nan)
  diverged = np.zeros((len(ps), len(lrs)), int)
  for i, p in enumerate(ps):
    for j, lr in enumerate(lrs):
      curve = suites.Curve('', sweep_name, (('partial', p), ('learning_rate', lr)))
      try:
        runs, epochs = (
          measures.curve_runs(workdir, curve),
          measures.configured_epochs(workdir, curve),
        )
      except FileNotFoundError:  # not run yet: NaN, not diverged
        continue
      diverged[i, j] = sum(bool(r and r[-1].get('diverged')) for r in runs)
      finals = [
        v
        for v in (measures.run_value(r, epochs, 'final_accuracy') for r in runs)
        if not math.isnan(v)
      ]
      if finals:
        error[i, j] = 100 - float(np.mean(finals))
  return ps, lrs, error, diverged


def plot_heatmap(workdir: str, sweep_name: str, output: str) -> str:
  """Final test error over the p x lr grid; diverged and unfinished cells are marked."""
  plt = _pyplot()
  ps, lrs, error, diverged = heatmap_cells(workdir, sweep_name)
  fig, ax = plt.subplots(figsize=(5, 4))
  image = ax.imshow(error, cmap='viridis_r')
  for i in range(len(ps)):
    for j in range(len(lrs)):
      if np.isnan(error[i, j]):  # a blank cell: dark text
        text, colour = ('diverged' if diverged[i, j] else 'not finished'), 'k'
      else:  # viridis_r: a high error is dark, a low one bright
        text = f'{error[i, j]:.1f}%' + (f'\n({diverged[i, j]} div.)' if diverged[i, j] else '')
        colour = 'w' if image.norm(error[i, j]) > 0.5 else 'k'
      ax.text(j, i, text, ha='center', va='center', color=colour, fontsize=9)
  ax.set_xticks(range(len(lrs)), [f'{lr:g}' for lr in lrs])
  ax.set_yticks(range(len(ps)), [f'1/{round(1 / p)}' for p in ps])
  epochs = measures.configured_epochs(workdir, suites.Curve('', sweep_name))
  last = measures.last_epochs(epochs)
  ax.set(
    xlabel='learning rate',
    ylabel='p',
    title=f'test error, mean of the last {last} of {epochs} epochs\n{sweep_name}',
  )
  fig.colorbar(image, ax=ax, label='test error (%)')
  fig.tight_layout()
  fig.savefig(output, dpi=110)
  plt.close(fig)
  return output


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


def build(
  workdir: str, suite_names: Sequence[str], output_dir: str, partial: bool = False
) -> dict[str, Any]:
  """Every figure (PNG) and table (Markdown) of the suites; returns ``{name: path or text}``.

  Without matplotlib (the ``train`` extra) the figures are left out with one warning.
  ``partial``: what the sweeps present allow, instead of raising for a missing one: a
  suite without any of its sweeps is left out, a figure draws the curves that exist (and
  names the others as not run), a table or heat map needs every sweep it reads.
  """
  os.makedirs(output_dir, exist_ok=True)
  names = suites.ALL_SUITES if 'all' in suite_names else suite_names
  figures = importlib.util.find_spec('matplotlib') is not None
  if not figures:
    warnings.warn('matplotlib is not installed: no figures, only the tables', stacklevel=2)
  built: dict[str, Any] = {}
  for name in names:
    suite = suites.SUITES[name]
    present = [s for s in suite.sweeps if measures.has_sweep(workdir, s)]
    if partial and not present:
      continue
    complete = not partial or len(present) == len(suite.sweeps)
    if suite.panels and figures:
      built[name] = plot_panels(workdir, suite, os.path.join(output_dir, f'{name}.png'), partial)
    if suite.heatmap and figures and (not partial or suite.heatmap in present):
      built[f'{name}_heatmap'] = plot_heatmap(
        workdir, suite.heatmap, os.path.join(output_dir, f'{name}_heatmap.png')
      )
    if suite.table and complete:
      built[f'{name}_table'] = (
        table2_markdown(workdir)
        if suite.table == 'table2'
        else final_table_markdown(workdir, suite)
      )
  tables = [f'### {k[: -len("_table")]}\n\n{v}\n' for k, v in built.items() if k.endswith('_table')]
  if tables:
    with open(os.path.join(output_dir, 'tables.md'), 'w', encoding='utf-8') as f:
      f.write('\n'.join(tables))
  return built
