"""Training-step throughput: our jitted JAX step versus the PyTorch twin in eager mode.

    python -m experiments.bench_train [--models vgg16,resnet18,wrn16_4 --width 1.0
                                       --batch_size 128 --repeats 3]

One training step (forward, backward, optimizer update) on a batch of 32x32x3 images
with 10 classes, for each architecture, in images per second (median over
``--repeats`` timed steps, warm-up and compilation excluded). Both sides use SGD
with momentum 0.9 and weight decay 5e-4 (``padam_jax.sgdm`` and
``torch.optim.SGD``), so the comparison is about the model step.

JAX side: ``padam_jax.training.loop.Trainer`` itself, training epochs of ``POOL_BATCHES``
steps (or ``--steps_per_call``, if more: one whole compiled call) over a pool of random
uint8 images (gathered, cropped, flipped and normalised on the device, split over all
local devices; on CPU one jitted, donated call per batch) with activations in
``--compute_dtype``; the time per step is the epoch's time divided by its steps
(``experiments.train_steps``). Unless ``XLA_FLAGS``
already sets ``--xla_force_host_platform_device_count``, the host devices are set up as
the launchers do (``experiments.launch.run``: two per CPU core) before JAX starts.

PyTorch side: ``padam_jax.reference.models.get_torch_model`` (same structure) in
``train()`` mode, eager, default number of threads; cross-entropy, backward and
``optimizer.step()`` on a float32 batch that is already normalised. The random
crop and flip are not done there (they cost little either way).

The JAX and PyTorch steps of every model alternate within each repeat, so that
both see the same machine state; the ratio column is JAX/PyTorch throughput of the
median steps, the last column that of each side's fastest step (less sensitive to other
jobs on a shared machine).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

from absl import flags
import jax

from experiments import launch, train_steps
from padam_jax.training import config as config_lib

_MODELS = flags.DEFINE_list('models', ['vgg16', 'resnet18', 'wrn16_4'],
                            'Architectures to time.')
_WIDTH = flags.DEFINE_float('width', 1.0, 'Channel-width multiplier (1.0: the exact models).')
_BATCH = flags.DEFINE_integer('batch_size', 128, 'Images per training step.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed steps per model and framework.')
_TORCH = flags.DEFINE_bool('torch', True, 'Also time the PyTorch twins.')
_STEPS_PER_CALL = flags.DEFINE_integer(
    'steps_per_call', None, 'Train steps per compiled call (a lax.scan when > 1); '
    'default: what Trainer picks for the backend (1 on CPU).')
_COMPUTE_DTYPE = flags.DEFINE_enum('compute_dtype', 'float32',
                                   list(config_lib.COMPUTE_DTYPES),
                                   'Activation dtype of the JAX step (PyTorch: float32).')


def _seconds(fn: Callable[[], None]) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def main(argv) -> None:
  del argv
  batch = _BATCH.value
  threads = None
  if _TORCH.value:
    import torch  # pylint: disable=import-outside-toplevel
    threads = torch.get_num_threads()
  print(f'JAX {jax.__version__} on {jax.device_count()} {jax.default_backend()} device(s); '
        f'PyTorch threads: {threads}; batch {batch}, width {_WIDTH.value}; JAX: '
        f'{_COMPUTE_DTYPE.value}, {_STEPS_PER_CALL.value or "default"} steps per call',
        flush=True)

  steps: dict[str, dict[str, Callable[[], None]]] = {}
  jax_steps = {}  # name -> train steps per timed JAX call
  for name in _MODELS.value:
    step = train_steps.jax_step(name, _WIDTH.value, batch, _STEPS_PER_CALL.value,
                                _COMPUTE_DTYPE.value)
    steps[name], jax_steps[name] = {'jax': step.run}, step.steps
    if _TORCH.value:
      steps[name]['torch'] = train_steps.torch_step(name, _WIDTH.value, batch)
    for side, fn in steps[name].items():  # warm-up: compilation, allocator, caches
      print(f'{name} {side}: warm-up {_seconds(fn):.2f} s', flush=True)
      fn()

  times: dict[tuple[str, str], list[float]] = {}
  for r in range(_REPEATS.value):
    for name, sides in steps.items():
      for side, fn in sides.items():
        seconds = _seconds(fn) / (jax_steps[name] if side == 'jax' else 1)
        times.setdefault((name, side), []).append(seconds)
        print(f'repeat {r + 1}: {name} {side} {seconds:.3f} s', flush=True)

  print()
  print('| model | JAX img/s | PyTorch img/s | ratio JAX/PyTorch | ratio of fastest steps |')
  print('|---|---:|---:|---:|---:|')
  for name in steps:
    jax_times = times[(name, 'jax')]
    jax_rate = batch / statistics.median(jax_times)
    if (name, 'torch') in times:
      torch_times = times[(name, 'torch')]
      torch_rate = batch / statistics.median(torch_times)
      print(f'| {name} | {jax_rate:.1f} | {torch_rate:.1f} | {jax_rate / torch_rate:.2f} | '
            f'{min(torch_times) / min(jax_times):.2f} |')
    else:
      print(f'| {name} | {jax_rate:.1f} | - | - | - |')


if __name__ == '__main__':
  launch.run(main)
