"""Reproduction directories as experiments.reproduce leaves them, with made-up records."""

import json
import os
from collections.abc import Callable
from typing import Any

from padam_jax.reproduction import suites
from padam_jax.rundir import runlog
from padam_jax.training import config as config_lib
from padam_jax.training import sweep

# (sweep name, member grid values, member index, epoch) -> the record's metrics, or None
# for a diverged epoch.
Metrics = Callable[[str, dict[str, Any], int, int], dict[str, float] | None]


def write_sweep(
  workdir: str,
  spec: suites.SweepSpec,
  seeds: int,
  epochs: int,
  metrics: Metrics,
  scale: str = 'cpu',
  preset: str = 'reproduction',
) -> None:
  """``WORKDIR/<spec.name>/``: ``sweep.json`` and each member's config and records."""
  fields, grid = suites.sweep_arguments(spec, suites.SCALES[scale], preset, seeds)
  fields['epochs'] = epochs
  members = sweep.expand(config_lib.TrainConfig(**fields), grid)
  sweep_dir = os.path.join(workdir, spec.name)
  os.makedirs(sweep_dir)
  with open(os.path.join(sweep_dir, sweep.SWEEP_FILE), 'w') as f:
    json.dump(
      {
        'mode': 'sequential',
        'grid': grid,
        'runs': [{'name': m.name, 'values': m.values} for m in members],
      },
      f,
    )
  for i, member in enumerate(members):
    run_dir = os.path.join(sweep_dir, member.name)
    os.makedirs(run_dir)
    runlog.write_or_check_config(run_dir, member.config.to_dict(), resuming=False)
    for epoch in range(1, epochs + 1):
      values = metrics(spec.name, member.values, i, epoch)
      record = {
        'epoch': epoch,
        'step': 32 * epoch,
        'learning_rate': 0.1,
        'partial': None,
        'train_seconds': 1.0,
        'train_accuracy': 0.5,
        'train_loss': None,
        'test_loss': None,
        'test_error': None,
      }
      if values is None:
        record.update(diverged=True, train_accuracy=None)
      else:
        record.update(values)
      runlog.append_metrics(run_dir, record)
