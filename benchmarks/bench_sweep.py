"""Times a K-configuration grid trained vmapped in one program against one run after another.

    python -m benchmarks.bench_sweep --model resnet18 --width 0.125

The grid is the reproduction's Figure 3 (p in {1/4, 1/8, 1/16} x lr in {0.1, 0.01, 0.001}:
K = 9) on ``--synthetic_train`` synthetic CIFAR-shaped images. Both modes train an epoch to
compile and warm up, then time ``--timed_epochs`` more; the sequential time is the sum over
the K single runs. Prints seconds per epoch (all K configurations) and the ratio
sequential / vmapped (above 1: the vmapped program is faster), plus compile-included
wall times, since on CPU the K single runs also compile K programs.
"""

import time
from typing import Any

import jax
from absl import flags

from experiments import config_flags, launch
from padam_jax import data
from padam_jax.training import sweep
from padam_jax.training import trainer as trainer_lib

config_flags.define_flags()
_PARTIALS = flags.DEFINE_list('partials', ['0.25', '0.125', '0.0625'], 'Grid of p.')
_LRS = flags.DEFINE_list('lrs', ['0.1', '0.01', '0.001'], 'Grid of learning rates.')
_TIMED_EPOCHS = flags.DEFINE_integer('timed_epochs', 1, 'Epochs timed after the first.')
_SYNTHETIC_TRAIN = flags.DEFINE_integer('synthetic_train', 1024, 'Synthetic training images.')


def _time_epochs(trainer: trainer_lib.TrainerBase[Any], epochs: int) -> tuple[float, float]:
  """(seconds to build + first epoch, seconds per later epoch)."""
  quiet = lambda _: None  # noqa: E731
  start = time.perf_counter()
  state = trainer.init_state()
  state, _ = trainer.train_epoch(state, 1, quiet)
  jax.block_until_ready(state)
  first = time.perf_counter() - start
  start = time.perf_counter()
  for epoch in range(2, 2 + epochs):
    state, _ = trainer.train_epoch(state, epoch, quiet)
  jax.block_until_ready(state)
  return first, (time.perf_counter() - start) / epochs


def main(argv):
  del argv
  base = config_flags.config_from_flags()
  grid = {
    'partial': [float(p) for p in _PARTIALS.value],
    'learning_rate': [float(lr) for lr in _LRS.value],
  }
  members = sweep.expand(base, grid)
  dataset = data.synthetic_dataset(_SYNTHETIC_TRAIN.value, num_test=200)
  print(
    f'JAX {jax.__version__} on {jax.device_count()} {jax.default_backend()} device(s); '
    f'{base.model} width {base.width}, batch {base.batch_size}, '
    f'{dataset.num_train} images per epoch, K = {len(members)}'
  )
  vmapped_first, vmapped = _time_epochs(sweep.SweepTrainer(members, dataset), _TIMED_EPOCHS.value)
  sequential_first, sequential = 0.0, 0.0
  for member in members:
    first, per_epoch = _time_epochs(
      trainer_lib.Trainer(member.config, dataset), _TIMED_EPOCHS.value
    )
    sequential_first += first
    sequential += per_epoch
  print('| mode | first epoch incl. compile (s) | s per epoch, all K |\n|---|---:|---:|')
  print(f'| vmap | {vmapped_first:.1f} | {vmapped:.2f} |')
  print(f'| sequential | {sequential_first:.1f} | {sequential:.2f} |')
  print(
    f'sequential / vmapped per epoch: {sequential / vmapped:.2f}x; '
    f'first epochs (compile included): {sequential_first / vmapped_first:.2f}x'
  )


if __name__ == '__main__':
  launch.run(main)
