"""Training-step throughput: our jitted JAX step versus the PyTorch twin in eager mode.

    python -m experiments.bench_train [--models vgg16,resnet18,wrn16_4 --width 1.0
                                       --batch_size 128 --repeats 3
                                       --compute_dtype float32 --steps_per_call N]

One training step (forward, backward, optimizer update) on a batch of 32x32x3 images
with 10 classes, for each architecture, in images per second (median over
``--repeats`` timed steps, warm-up and compilation excluded). Both sides use SGD
with momentum 0.9 and weight decay 5e-4 (``padam_jax.sgdm`` and
``torch.optim.SGD``), so the comparison is about the model step.

JAX side: ``padam_jax.train.Trainer`` itself, training epochs of ``POOL_BATCHES``
steps (or ``--steps_per_call``, if more: one whole compiled call) over a pool of random
uint8 images (gathered, cropped, flipped and normalised on the device, split over all
local devices; on CPU one jitted, donated call per batch) with activations in
``--compute_dtype``; the time per step is the epoch's time divided by its steps. Unless
``XLA_FLAGS`` already sets ``--xla_force_host_platform_device_count``, this script sets it
to the number of CPU cores before importing JAX, so that the data-parallel step uses
every core.

PyTorch side: ``padam_jax.reference.models.get_torch_model`` (same structure) in
``train()`` mode, eager, default number of threads; cross-entropy, backward and
``optimizer.step()`` on a float32 batch that is already normalised. The random
crop and flip are not done there (they cost little either way).

The JAX and PyTorch steps of every model alternate within each repeat, so that
both see the same machine state; the ratio column is JAX/PyTorch throughput.
"""

from __future__ import annotations

import os

_DEVICE_FLAG = '--xla_force_host_platform_device_count'
if _DEVICE_FLAG not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             f' {_DEVICE_FLAG}={len(os.sched_getaffinity(0))}').strip()

# pylint: disable=g-import-not-at-top,wrong-import-position
import statistics
import time
from typing import Callable

from absl import app, flags
import jax

from padam_jax import config as config_lib
from padam_jax import data, train

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

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
LEARNING_RATE = 0.01
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
POOL_BATCHES = 4  # the image pool the JAX batches are gathered from (at least)


def jax_batches() -> int:
  """Steps of a timed JAX epoch: ``POOL_BATCHES``, or one whole call of more steps."""
  return max(POOL_BATCHES, _STEPS_PER_CALL.value or 1)


def jax_step(name: str, width: float, batch_size: int) -> Callable[[], None]:
  """A closure running one ``Trainer`` epoch of ``jax_batches()`` steps, blocking at its end.

  The caller divides its time by ``jax_batches()``.
  """
  dataset = data.synthetic_dataset(jax_batches() * batch_size, batch_size)
  config = config_lib.resolve(config_lib.TrainConfig(
      model=name, width=width, dataset='synthetic', optimizer='sgdm',
      learning_rate=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
      batch_size=batch_size, drop_remainder=True, epochs=1,
      compute_dtype=_COMPUTE_DTYPE.value))
  trainer = train.Trainer(config, dataset, steps_per_call=_STEPS_PER_CALL.value)
  box = {'state': trainer.init_state(), 'epoch': 1}

  def run() -> None:
    box['state'], _ = trainer.train_epoch(box['state'], box['epoch'], lambda _: None)
    box['epoch'] += 1
    jax.block_until_ready(box['state'])

  return run


def torch_step(name: str, width: float, batch_size: int) -> Callable[[], None]:
  """A closure running one eager PyTorch training step of the twin model."""
  import torch  # pylint: disable=import-outside-toplevel
  from padam_jax.reference.models import get_torch_model  # pylint: disable=import-outside-toplevel

  torch.manual_seed(0)
  model = get_torch_model(name, num_classes=NUM_CLASSES, width=width)
  model.train()
  opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM,
                        weight_decay=WEIGHT_DECAY)
  batches = [(torch.randn(batch_size, IMAGE_SHAPE[2], *IMAGE_SHAPE[:2]),
              torch.randint(0, NUM_CLASSES, (batch_size,))) for _ in range(POOL_BATCHES)]
  box = {'step': 0}

  def run() -> None:
    x, y = batches[box['step'] % POOL_BATCHES]
    box['step'] += 1
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()

  return run


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
  for name in _MODELS.value:
    steps[name] = {'jax': jax_step(name, _WIDTH.value, batch)}
    if _TORCH.value:
      steps[name]['torch'] = torch_step(name, _WIDTH.value, batch)
    for side, fn in steps[name].items():  # warm-up: compilation, allocator, caches
      print(f'{name} {side}: warm-up {_seconds(fn):.2f} s', flush=True)
      fn()

  times: dict[tuple[str, str], list[float]] = {}
  for r in range(_REPEATS.value):
    for name, sides in steps.items():
      for side, fn in sides.items():
        seconds = _seconds(fn) / (jax_batches() if side == 'jax' else 1)
        times.setdefault((name, side), []).append(seconds)
        print(f'repeat {r + 1}: {name} {side} {seconds:.3f} s', flush=True)

  print()
  print('| model | JAX img/s | PyTorch img/s | ratio JAX/PyTorch |')
  print('|---|---:|---:|---:|')
  for name in steps:
    jax_rate = batch / statistics.median(times[(name, 'jax')])
    if (name, 'torch') in times:
      torch_rate = batch / statistics.median(times[(name, 'torch')])
      print(f'| {name} | {jax_rate:.1f} | {torch_rate:.1f} | {jax_rate / torch_rate:.2f} |')
    else:
      print(f'| {name} | {jax_rate:.1f} | - | - |')


if __name__ == '__main__':
  app.run(main)
