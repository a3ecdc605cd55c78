"""Train-loss and test-error curves from runs' ``metrics.jsonl`` files, as a PNG.

    python -m experiments.plot --workdirs runs/a,runs/b --output curves.png
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from absl import app, flags

from padam_jax import runlog

_WORKDIRS = flags.DEFINE_list('workdirs', None, 'Run directories to plot.')
_OUTPUT = flags.DEFINE_string('output', 'curves.png', 'The PNG to write.')


def plot_runs(workdirs: Sequence[str], output: str,
              labels: Optional[Sequence[str]] = None, title: str = '') -> str:
  """Draws train loss and test error (%) per epoch of each run into ``output``."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  labels = labels or [os.path.basename(os.path.normpath(w)) for w in workdirs]
  fig, (loss_ax, error_ax) = plt.subplots(1, 2, figsize=(10, 4))
  for workdir, label in zip(workdirs, labels):
    records = runlog.read_metrics(workdir)
    if not records:
      raise ValueError(f'no metrics in {workdir}/{runlog.METRICS_FILE}')
    epochs = [r['epoch'] for r in records]
    loss_ax.plot(epochs, [r['train_loss'] for r in records], label=label)
    error_ax.plot(epochs, [100 * r['test_error'] for r in records], label=label)
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
  if not _WORKDIRS.value:
    raise app.UsageError('--workdirs is required')
  print(plot_runs(_WORKDIRS.value, _OUTPUT.value))


if __name__ == '__main__':
  app.run(main)
