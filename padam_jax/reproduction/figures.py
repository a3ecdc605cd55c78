"""The reproduction's figures (PNG), from runs' ``metrics.jsonl`` alone.

Each :class:`padam_jax.reproduction.suites.Curve` is a line: the mean over its seeds, with
their standard deviation (``measures.over_seeds``) as a shaded band. A diverged run
(``"diverged": true``) contributes no values from that epoch on and is marked as such.
Drawing needs matplotlib (the ``train`` extra).
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np

from padam_jax.reproduction import measures, suites

# The rows of a panel figure: the record's key, the axis label, the factor of its values.
ROWS = (('train_loss', 'train loss', 1.0), ('test_error', 'test error (%)', 100.0))


def _pyplot() -> Any:
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

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
      for row, (key, _name, factor) in enumerate(ROWS):
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
    for row, (_, name, _) in enumerate(ROWS):
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
