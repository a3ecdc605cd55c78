"""The plan of a reproduction: every sweep its suites need at a scale, and their training.

``build`` turns suite and sweep names into sweeps (a base ``TrainConfig``, its grid and the
grid's members); ``train`` trains them one after another, each in ``WORKDIR/<sweep>/``
(rerunning skips complete runs and resumes the others).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from padam_jax import data as data_lib
from padam_jax.reproduction import suites
from padam_jax.training import config as config_lib
from padam_jax.training import sweep as sweep_lib


@dataclasses.dataclass(frozen=True)
class PlannedSweep:
  """One sweep of a plan: its base configuration, grid and the grid's resolved members."""

  name: str
  base: config_lib.TrainConfig
  grid: dict[str, list[Any]]
  members: list[sweep_lib.Member]


def build(
  suite_names: Sequence[str],
  sweep_names: Sequence[str] | None,
  scale: suites.Scale,
  preset: str,
  seeds: int,
  data_dir: str | None = None,
  epochs: int | None = None,
  validation_size: int | None = None,
) -> list[PlannedSweep]:
  """The sweeps of the named suites ('all': the student reproduction's), or only
  ``sweep_names`` of them, at ``scale`` with ``seeds`` seeds each; ``epochs``, if given,
  replaces the scale's; ``validation_size``, if given, holds that many training images out
  of every run and evaluates them each epoch.

  An unknown name or a bad setting raises ``ValueError`` (a ``ConfigError`` names its field).
  """
  plan = []
  for spec in suites.sweeps_of(list(suite_names), list(sweep_names) if sweep_names else None):
    fields, grid = suites.sweep_arguments(spec, scale, preset, seeds, data_dir)
    if epochs is not None:
      fields['epochs'] = epochs
    if validation_size is not None:
      fields['validation_size'] = validation_size
    base = config_lib.TrainConfig(**fields)
    plan.append(PlannedSweep(spec.name, base, grid, sweep_lib.expand(base, grid)))
  return plan


def train(
  plan: Sequence[PlannedSweep],
  workdir: str,
  datasets: Mapping[str, data_lib.Dataset],
  mode: str = 'auto',
  progress: Callable[[str], None] = print,
  tensorboard: bool = False,
) -> None:
  """Trains every sweep of ``plan`` in ``WORKDIR/<sweep>/`` on the dataset its runs name
  (``datasets``, by config name), with a progress line per sweep and one at the end."""
  start = time.perf_counter()
  for i, planned in enumerate(plan):
    progress(
      f'[{i + 1}/{len(plan)}] {planned.name}: {len(planned.members)} runs '
      f'({time.perf_counter() - start:.0f} s so far)'
    )
    sweep_lib.run_sweep(
      planned.base,
      planned.grid,
      os.path.join(workdir, planned.name),
      mode=mode,
      progress=progress,
      dataset=datasets[planned.members[0].config.dataset],
      tensorboard=tensorboard,
    )
  progress(f'trained in {time.perf_counter() - start:.0f} s')
