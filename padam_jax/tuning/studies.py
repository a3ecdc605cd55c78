"""The tuning studies as data: what is searched, how many trials, how a winner is chosen
and how many fresh seeds it is rerun on. Fixed before any trial runs (docs/tuning.md).
"""

from __future__ import annotations

import dataclasses

from padam_jax.tuning import selection
from padam_jax.tuning.search import Dimension, SearchSpace


@dataclasses.dataclass(frozen=True)
class Study:
  """Equal budgets: every optimizer gets ``trials`` quasi-random trials of its space."""

  name: str
  description: str
  model: str
  scale: str  # a key of padam_jax.reproduction.suites.SCALES
  preset: str
  validation_size: int  # the last training images, held out for selection
  spaces: tuple[SearchSpace, ...]
  trials: int
  draw_seed: int  # the Halton scrambling's seed, the same for every optimizer
  trial_seed: int  # the training seed of every trial
  rerun_seeds: tuple[int, ...]  # fresh seeds for each winner, none of them a trial's
  selection_share: float = 1 / 6  # validation accuracy averaged over this share of epochs

  def __post_init__(self) -> None:
    if self.trial_seed in self.rerun_seeds:
      raise ValueError(f'{self.name}: the rerun seeds must be fresh, not the trials\' seed')


def _lr(low: float, high: float) -> Dimension:
  return Dimension('learning_rate', low, high, 'log')


STUDIES = {
  s.name: s
  for s in [
    Study(
      name='wrn16_4_paper',
      description='WRN-16-4 at the converged scale under the authors\' preset: Padam, SGDM, '
      'Adam and AMSGrad, 8 trials each',
      model='wrn16_4',
      scale='cpu_converged',
      preset='paper',
      validation_size=5000,
      spaces=(
        # Padam spans Adam-like (p = 1/2, small lr) to SGD-like (p = 0, large lr), so its
        # lr range covers both optimizers' ranges.
        SearchSpace('padam', (_lr(1e-4, 1.0), Dimension('partial', 0.0, 0.5, 'linear'))),
        SearchSpace('sgdm', (_lr(3e-3, 3.0),)),
        SearchSpace('adam', (_lr(3e-5, 3e-2),)),
        SearchSpace('amsgrad', (_lr(3e-5, 3e-2),)),
      ),
      trials=8,
      draw_seed=0,
      trial_seed=0,
      rerun_seeds=(1, 2, 3, 4, 5),
    ),
  ]
}


def markdown_table(study: Study) -> str:
  """The study's design as the Markdown table docs/tuning.md shows."""
  from padam_jax.reproduction import suites

  scale = suites.SCALES[study.scale]
  epochs = scale.epochs or 0
  first = epochs - selection.last_epochs(epochs, study.selection_share) + 1
  rows = [
    ('network, scale', f'{study.model}, `--scale {study.scale}` ({scale.description})'),
    ('preset', f'`{study.preset}`'),
    (
      'validation split',
      f'the last {study.validation_size:,} training images (never trained on, never the test set)',
    ),
    *((space.optimizer, space.describe().split(': ', 1)[1]) for space in study.spaces),
    (
      'trials',
      f'{study.trials} per optimizer, a scrambled Halton sequence of seed {study.draw_seed}, '
      f'each trial trained once with seed {study.trial_seed}',
    ),
    (
      'selection',
      f'the highest validation accuracy, averaged over epochs {first}-{epochs} of {epochs}',
    ),
    (
      'reruns',
      'each winner on the fresh seeds '
      f'{", ".join(map(str, study.rerun_seeds))}; reported on the test set',
    ),
  ]
  return '\n'.join(['| what | value |', '|---|---|', *(f'| {k} | {v} |' for k, v in rows)]) + '\n'
