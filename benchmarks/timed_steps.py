"""One training step of a CIFAR model in JAX (through ``Trainer``) and in PyTorch (eager twin).

Shared by ``benchmarks.bench_train`` and ``benchmarks.profile_step``. Both sides use SGD
with momentum 0.9 and weight decay 5e-4 on a batch of random 32x32x3 images with 10
classes. The benchmarks start through ``experiments.launch.run``, which sets up the host
devices as the launchers do, so that the data-parallel step uses every core.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from padam_jax import data
from padam_jax.training import config as config_lib
from padam_jax.training import trainer as trainer_lib

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
LEARNING_RATE = 0.01
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
POOL_BATCHES = 4  # the image pool the JAX batches are gathered from (at least)


@dataclasses.dataclass
class JaxStep:
  """``run()`` trains one ``Trainer`` epoch of ``steps`` steps and blocks at its end."""

  trainer: trainer_lib.Trainer
  state: Any
  epoch: int = 1

  @property
  def steps(self) -> int:
    return self.trainer.steps_per_epoch

  def run(self) -> None:
    self.state, _ = self.trainer.train_epoch(self.state, self.epoch, lambda _: None)
    self.epoch += 1
    jax.block_until_ready(self.state)

  def lowered(self):
    """The jitted one-step program of ``Trainer`` lowered for this state and batch."""
    t = self.trainer
    indices, _, key = t._epoch_plan(self.epoch)
    return t._train_one.lower(
      self.state, key, t.train_images, t.train_labels, indices[:1], np.zeros((1,), np.int32)
    )


def jax_step(
  name: str,
  width: float,
  batch_size: int,
  steps_per_call: int | None = None,
  compute_dtype: str = 'float32',
) -> JaxStep:
  """A ``Trainer`` over a pool of random uint8 batches (augmented on the device).

  The pool holds ``POOL_BATCHES`` batches, or ``steps_per_call`` if more, so that an
  epoch is at least one whole compiled call.
  """
  batches = max(POOL_BATCHES, steps_per_call or 1)
  dataset = data.synthetic_dataset(batches * batch_size, num_test=batch_size)
  config = config_lib.resolve(
    config_lib.TrainConfig(
      model=name,
      width=width,
      dataset='synthetic',
      optimizer='sgdm',
      learning_rate=LEARNING_RATE,
      momentum=MOMENTUM,
      weight_decay=WEIGHT_DECAY,
      batch_size=batch_size,
      drop_remainder=True,
      epochs=1,
      compute_dtype=compute_dtype,
    )
  )
  trainer = trainer_lib.Trainer(config, dataset, steps_per_call=steps_per_call)
  return JaxStep(trainer, trainer.init_state())


def torch_step(name: str, width: float, batch_size: int) -> Callable[[], None]:
  """A closure running one eager PyTorch training step of the twin model.

  The batch is float32 and already normalised: no crop or flip (they cost little).
  """
  import torch

  from padam_jax.reference.models import get_torch_model

  torch.manual_seed(0)
  model = get_torch_model(name, num_classes=NUM_CLASSES, width=width)
  model.train()
  opt = torch.optim.SGD(
    model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
  )
  batches = [
    (
      torch.randn(batch_size, IMAGE_SHAPE[2], *IMAGE_SHAPE[:2]),
      torch.randint(0, NUM_CLASSES, (batch_size,)),
    )
    for _ in range(POOL_BATCHES)
  ]
  box = {'step': 0}

  def run() -> None:
    x, y = batches[box['step'] % POOL_BATCHES]
    box['step'] += 1
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()

  return run
