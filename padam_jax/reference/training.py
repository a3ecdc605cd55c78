"""A whole training run in PyTorch: the oracle that a padam_jax run is compared with.

Written from PyTorch alone, as a user of the authors' code would train, so that a whole
run can be set against ours (``padam_jax.crosscheck.whole_run``):

* shuffling: ``torch.randperm`` from a ``torch.Generator`` seeded with the run's seed,
  one permutation per epoch; the last partial batch is kept (as the DataLoader's
  default, and ours);
* augmentation in plain torch ops: the raw uint8 image padded by 4 zero (black) pixels
  on every side, a window at an offset drawn uniformly from ``{0, ..., 8}`` in each axis,
  a horizontal flip with probability 1/2 (torchvision's ``RandomCrop(32, padding=4)``
  and ``RandomHorizontalFlip()``), then ``(x / 255 - mean) / std`` with the dataset's
  statistics (``Dataset.mean`` / ``std``, the same as ours);
* the model twins (``padam_jax.reference.models``), initialised by PyTorch under
  ``torch.manual_seed(seed)``, and the optimizer twins
  (``padam_jax.reference.twins``: the authors' Padam, ``torch.optim``); the multistep
  learning rate is ``torch.optim.lr_scheduler.MultiStepLR`` stepped once per batch;
* BatchNorm in train mode while training, eval mode while evaluating; evaluation over
  every test example in batches of ``eval_batch_size``.

Each epoch's record goes to ``WORKDIR/metrics.jsonl`` in the format of our runs
(``padam_jax.rundir.runlog``), so plots and tables read both alike. A run has no
checkpoints: an unfinished run directory is trained again from the start.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from padam_jax import data as data_lib
from padam_jax.reference import convert, models, twins
from padam_jax.rundir import runlog
from padam_jax.training import config as config_lib
from padam_jax.training import loop
from padam_jax.training import trainer as trainer_lib

PADDING = 4
# Inputs of one step: float32 NCHW images and int64 labels.
Batch = tuple[torch.Tensor, torch.Tensor]


def shuffled_batches(
  num_examples: int, batch_size: int, generator: torch.Generator, drop_remainder: bool = False
) -> list[torch.Tensor]:
  """One epoch's example indices in batches, from a fresh permutation."""
  order = torch.randperm(num_examples, generator=generator)
  batches = list(torch.split(order, batch_size))
  if drop_remainder and len(batches[-1]) < batch_size:
    batches.pop()
  return batches


def random_crop_flip(
  images: torch.Tensor, generator: torch.Generator, padding: int = PADDING
) -> torch.Tensor:
  """Per-image random crop of the zero-padded image, then a random horizontal flip
  (uint8 NHWC in and out)."""
  n, h, w, _ = images.shape
  padded = torch.nn.functional.pad(images, (0, 0, padding, padding, padding, padding))
  offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
  flips = torch.rand(n, generator=generator) < 0.5
  rows = offsets[:, :1] + torch.arange(h)  # [n, h]
  cols = offsets[:, 1:] + torch.arange(w)  # [n, w]
  cols = torch.where(flips[:, None], cols.flip(1), cols)
  return padded[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
  """uint8 NHWC -> float32 NCHW ``(x / 255 - mean) / std``."""
  x = images.to(torch.float32) / 255.0
  x = (x - torch.tensor(mean, dtype=torch.float32)) / torch.tensor(std, dtype=torch.float32)
  return x.permute(0, 3, 1, 2).contiguous()


def nchw(x: np.ndarray) -> torch.Tensor:
  """An NHWC numpy batch (e.g. our augmented inputs) as a float32 NCHW tensor."""
  return torch.from_numpy(np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 3, 1, 2)))


def check_supported(config: config_lib.ResolvedConfig) -> None:
  """Raises ``ValueError`` naming what of a resolved config the PyTorch run lacks."""
  if config.lr_schedule not in ('constant', 'multistep'):
    raise ValueError(
      f'the PyTorch run supports lr_schedule constant and multistep, not {config.lr_schedule!r}'
    )
  if config.partial_end is not None:
    raise ValueError('the PyTorch run has no p schedule (partial_end must be unset)')
  if config.compute_dtype != 'float32':
    raise ValueError(f'the PyTorch run computes in float32, not {config.compute_dtype}')
  twin = twins.twin_of(config.optimizer)
  if twin.ours:
    raise ValueError(
      f'{config.optimizer} has no PyTorch twin with the same semantics ({twin.mismatch}); '
      'choose another optimizer'
    )


class TorchRun:
  """One PyTorch training run of a ``ResolvedConfig``.

  ``initial_variables``: our (Flax) variables to start from instead of PyTorch's own
  initialisation (a control that removes the initial weights as a source of difference).
  """

  def __init__(
    self,
    config: config_lib.ResolvedConfig,
    dataset: data_lib.Dataset,
    initial_variables: dict[str, Any] | None = None,
  ):
    check_supported(config)
    self.config, self.dataset = config, dataset
    torch.manual_seed(config.seed)
    self.generator = torch.Generator().manual_seed(config.seed)
    self.model = models.get_torch_model(
      config.model, num_classes=dataset.num_classes, width=config.width
    )
    if initial_variables is not None:
      convert.flax_to_torch(initial_variables, self.model)
    make_optimizer = twins.torch_twin(
      config.optimizer,
      learning_rate=config.learning_rate,
      weight_decay=config.weight_decay,
      partial=config.partial if config.partial is not None else config_lib.DEFAULT_PARTIAL,
    )
    self.optimizer = make_optimizer(list(self.model.parameters()))
    self.steps_per_epoch = data_lib.num_batches(
      dataset.num_train, config.batch_size, config.drop_remainder
    )
    self.scheduler = None
    if config.lr_schedule == 'multistep':
      total = config.epochs * self.steps_per_epoch
      self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
        self.optimizer, milestones=[int(0.5 * total), int(0.75 * total)], gamma=0.1
      )
    self.train_images = torch.from_numpy(dataset.train_images)
    self.train_labels = torch.from_numpy(dataset.train_labels.astype(np.int64))
    self.test_images = torch.from_numpy(dataset.test_images)
    self.test_labels = torch.from_numpy(dataset.test_labels.astype(np.int64))
    self.step = 0

  @property
  def learning_rate(self) -> float:
    return float(self.optimizer.param_groups[0]['lr'])

  def own_batches(self) -> Iterator[Batch]:
    """An epoch of PyTorch's own shuffled, augmented, normalised batches."""
    for rows in shuffled_batches(
      self.dataset.num_train, self.config.batch_size, self.generator, self.config.drop_remainder
    ):
      images = random_crop_flip(self.train_images[rows], self.generator)
      yield normalize(images, self.dataset.mean, self.dataset.std), self.train_labels[rows]

  def train_epoch(self, batches: Iterable[Batch]) -> dict[str, float]:
    """Trains on ``batches``; the epoch's mean loss and accuracy, and its seconds."""
    start = time.perf_counter()
    loss_sum, correct, count = 0.0, 0, 0
    self.model.train()
    for x, labels in batches:
      self.optimizer.zero_grad(set_to_none=True)
      logits = self.model(x)
      loss = torch.nn.functional.cross_entropy(logits, labels)
      loss.backward()
      self.optimizer.step()
      if self.scheduler is not None:
        self.scheduler.step()
      self.step += 1
      loss_sum += loss.item() * len(labels)
      correct += int((logits.argmax(1) == labels).sum())
      count += len(labels)
    return {
      'train_loss': loss_sum / count,
      'train_accuracy': correct / count,
      'train_seconds': time.perf_counter() - start,
    }

  @torch.no_grad()
  def evaluate(self) -> dict[str, float]:
    """Loss and top-1 error over every test example, in eval mode."""
    self.model.eval()
    loss_sum, correct = 0.0, 0
    for rows in torch.split(torch.arange(self.dataset.num_test), self.config.eval_batch_size):
      x = normalize(self.test_images[rows], self.dataset.mean, self.dataset.std)
      logits, labels = self.model(x), self.test_labels[rows]
      loss_sum += float(torch.nn.functional.cross_entropy(logits, labels, reduction='sum'))
      correct += int((logits.argmax(1) == labels).sum())
    return {
      'test_loss': loss_sum / self.dataset.num_test,
      'test_error': 1.0 - correct / self.dataset.num_test,
    }

  def variables(self, template: dict[str, Any]) -> dict[str, Any]:
    """The model's parameters and BatchNorm statistics in our layout (``template``'s)."""
    return convert.torch_to_flax(self.model, template)


def train_torch(
  config: config_lib.TrainConfig,
  dataset: data_lib.Dataset,
  workdir: str,
  batches: Callable[[int], Iterable[Batch]] | None = None,
  initial_variables: dict[str, Any] | None = None,
  progress: Callable[[str], None] = print,
) -> TorchRun:
  """Trains ``config`` in PyTorch, writing ``workdir/config.json`` and ``metrics.jsonl``.

  ``batches(epoch)`` (1-based) gives each epoch's inputs instead of PyTorch's own (a
  control: e.g. our augmented batches). A ``validation_size`` holds its images out of
  training, as in the JAX run, but only the test set is evaluated. Returns the finished run.
  """
  config = config_lib.resolve(config)
  dataset = trainer_lib.config_dataset(dataset, config)  # as the JAX run trains on it
  run = TorchRun(config, dataset, initial_variables)
  os.makedirs(workdir, exist_ok=True)
  runlog.keep_epochs_up_to(workdir, 0)
  loop.record_config(workdir, config, resuming=False)
  for epoch in range(1, config.epochs + 1):
    learning_rate = run.learning_rate
    train = run.train_epoch(run.own_batches() if batches is None else batches(epoch))
    record = {
      'epoch': epoch,
      'step': run.step,
      **train,
      **run.evaluate(),
      'learning_rate': learning_rate,
      'partial': config.partial,
    }
    runlog.append_metrics(workdir, record)
    progress(
      f'torch seed {config.seed} epoch {epoch}/{config.epochs}: train loss '
      f'{record["train_loss"]:.4f} acc {record["train_accuracy"]:.4f}, test loss '
      f'{record["test_loss"]:.4f} error {record["test_error"]:.4f} '
      f'({record["train_seconds"]:.1f} s)'
    )
  return run
