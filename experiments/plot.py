"""Figures and tables from runs' ``metrics.jsonl`` files alone.

    python -m experiments.plot --workdirs runs/a,runs/b --output curves.png
    python -m experiments.plot --reproduction runs/repro --suite all --output_dir docs/cpu
    python -m experiments.plot --reproduction runs/repro --claims
    python -m experiments.plot --summary runs/conv,runs/paper --output_dir docs/summary \
        --paste_into README.md,docs/reproduction.md

The first compares single runs (train loss and test error per epoch); the second builds
the reproduction's figures (PNG) and tables (Markdown, also printed) from a directory of
``experiments.reproduce``; the third only the claims table (``claims.md``: each claim of
the preset the runs recorded, with our value, its 95% interval over seeds and a verdict);
the fourth, from one such directory per preset, every claim of every protocol with its
verdict in plain words and the figures (``summary.md``), its two tables also pasted over
the old ones in the ``--paste_into`` pages.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from padam_jax.rundir import runlog

_WORKDIRS = flags.DEFINE_list('workdirs', None, 'Run directories to plot.')
_OUTPUT = flags.DEFINE_string('output', 'curves.png', 'The PNG to write.')
_REPRODUCTION = flags.DEFINE_string(
  'reproduction', None, 'A WORKDIR of experiments.reproduce to plot.'
)
_SUITE = flags.DEFINE_list('suite', ['all'], 'Suites to plot (with --reproduction).')
_CLAIMS = flags.DEFINE_bool(
  'claims', False, 'With --reproduction: only the claims table (OUTPUT_DIR/claims.md).'
)
_SUMMARY = flags.DEFINE_list(
  'summary',
  None,
  'Directories of experiments.reproduce, one per preset: every claim\'s verdict in plain '
  'words and the figures (OUTPUT_DIR/summary.md).',
)
_PASTE_INTO = flags.DEFINE_list(
  'paste_into',
  [],
  'With --summary: Markdown pages whose verdict tables (the one-line table, the full '
  'one) are replaced by the new ones, e.g. README.md,docs/reproduction.md.',
)
_OUTPUT_DIR = flags.DEFINE_string(
  'output_dir', None, 'Where figures and tables.md go (default: REPRODUCTION/figures).'
)


def run_labels(workdirs: Sequence[str]) -> list[str]:
  """Each run's directory name, with as many parent folders as it takes to tell the runs
  apart (``jax/seed=0`` and ``torch/seed=0``)."""
  parts = [os.path.normpath(w).split(os.sep) for w in workdirs]
  for depth in range(1, max(len(p) for p in parts)):
    labels = ['/'.join(p[-depth:]) for p in parts]
    if len(set(labels)) == len(labels):
      return labels
  return ['/'.join(p) for p in parts]


def plot_runs(
  workdirs: Sequence[str], output: str, labels: Sequence[str] | None = None, title: str = ''
) -> str:
  """Draws train loss and test error (%) per epoch of each run into ``output``."""
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  labels = labels or run_labels(workdirs)
  fig, (loss_ax, error_ax) = plt.subplots(1, 2, figsize=(10, 4))
  for workdir, label in zip(workdirs, labels, strict=True):
    records = runlog.read_metrics(workdir)
    if not records:
      raise ValueError(f'no metrics in {workdir}/{runlog.METRICS_FILE}')
    epochs = [r['epoch'] for r in records]
    value = lambda r, key: np.nan if r.get(key) is None else r[key]  # noqa: E731  null: diverged
    loss_ax.plot(epochs, [value(r, 'train_loss') for r in records], label=label)
    error_ax.plot(epochs, [100 * value(r, 'test_error') for r in records], label=label)
  loss_ax.set(xlabel='epoch', ylabel='train loss', yscale='log')
  error_ax.set(xlabel='epoch', ylabel='test error (%)')
  for ax in (loss_ax, error_ax):
    ax.grid(alpha=0.3)
    ax.legend()
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(output, dpi=120)
  plt.close(fig)
  return output


def main(argv):
  del argv
  if sum(bool(v) for v in (_WORKDIRS.value, _REPRODUCTION.value, _SUMMARY.value)) != 1:
    raise app.UsageError('give one of --workdirs, --reproduction or --summary')
  if _WORKDIRS.value:
    print(plot_runs(_WORKDIRS.value, _OUTPUT.value))
    return
  if _SUMMARY.value:
    from padam_jax.reproduction import summary

    if not _OUTPUT_DIR.value:
      raise app.UsageError('--summary needs --output_dir')
    missing = [page for page in _PASTE_INTO.value if not os.path.isfile(page)]
    if missing:
      raise app.UsageError(f'--paste_into: no such page {missing[0]}')
    try:
      print(summary.write(_SUMMARY.value, _OUTPUT_DIR.value, _PASTE_INTO.value))
    except ValueError as error:
      raise app.UsageError(str(error)) from None
    return
  from padam_jax.reproduction import claims_table, report, suites

  reproduction = _REPRODUCTION.value
  assert reproduction  # one of the three was given
  unknown = set(_SUITE.value) - {*suites.SUITE_NAMES, 'all'}
  if unknown:
    raise app.UsageError(
      f'unknown suite {sorted(unknown)[0]!r}; choose from {", ".join(suites.SUITE_NAMES)}, all'
    )
  output_dir = _OUTPUT_DIR.value or os.path.join(reproduction, 'figures')
  if _CLAIMS.value:
    print(claims_table.write(reproduction, output_dir))
    return
  try:
    built = report.build(reproduction, _SUITE.value, output_dir)
  except (FileNotFoundError, ValueError) as error:
    raise app.UsageError(str(error)) from None
  for name, value in built.items():
    print(f'{name}:\n{value}\n')
  print(f'claims:\n{claims_table.write(reproduction, output_dir)}')


if __name__ == '__main__':
  app.run(main)
