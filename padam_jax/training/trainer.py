"""Trainers: the compiled programs and on-device data of one configuration, and one epoch
of training or evaluation on them.

Data flow: config -> dataset as uint8 on the devices -> model + optimizer ->
``lax.scan`` over chunks of on-device batches (gather, crop/flip/normalise,
forward, backward, update; state donated) -> the epoch's mean metrics.
``TrainerBase`` declares what the epoch loop (``loop.train_runs``) calls; ``Trainer``
trains one run, ``sweep.SweepTrainer`` K runs side by side.
"""

from __future__ import annotations

import abc
import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from padam_jax import data as data_lib
from padam_jax import models
from padam_jax.distributed import sharding
from padam_jax.training import config as config_lib
from padam_jax.training.steps import (
  TrainState,
  derive_key,
  eval_sums,
  init_train_state,
  train_step,
)

logger = logging.getLogger(__name__)

# A progress line (and a host round-trip) every this many steps, at most.
PROGRESS_EVERY = 40
# The host waits for the devices every this many compiled calls (train chunks, evaluation
# batches), so that at most about twice as many launches (a call and the jitted add of its
# metrics) are queued per device. jaxlib's CPU client before 0.12 parks a launch beyond 32
# in flight per device on one of its pool threads; enough such launches take every thread
# and an all-reduce waits forever for a device that never gets one (docs/allreduce_hang.md).
CALLS_IN_FLIGHT = 8


@jax.jit
def _add_sums(totals: dict[str, jax.Array], sums: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """``totals + sums``, leaf by leaf, in one launch."""
  return jax.tree.map(jnp.add, totals, sums)


def _accumulate(
  totals: dict[str, jax.Array] | None, sums: dict[str, jax.Array], calls: int
) -> dict[str, jax.Array]:
  """``totals + sums`` (``sums`` when ``totals`` is None); after every
  ``CALLS_IN_FLIGHT``-th of ``calls``, waits until the devices have computed it."""
  totals = sums if totals is None else _add_sums(totals, sums)
  if calls % CALLS_IN_FLIGHT == 0:
    jax.block_until_ready(totals)
  return totals


def _largest_divisor_at_most(n: int, limit: int) -> int:
  return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def _describe(values: np.ndarray) -> str:
  """One loss, or the range of K side-by-side losses."""
  values = np.asarray(values)
  if values.ndim == 0:
    return f'{values:.4f}'
  return f'{np.nanmin(values):.4f}..{np.nanmax(values):.4f} over {values.size} models'


StateT = TypeVar('StateT')


class TrainerBase(abc.ABC, Generic[StateT]):
  """Owns the compiled programs and the on-device data of one configuration; a subclass
  says what its state trains (``Trainer``: one run; ``sweep.SweepTrainer``: K side by side).
  ``train_runs`` calls only the hooks defined here."""

  def __init__(
    self,
    config: config_lib.ResolvedConfig,
    dataset: data_lib.Dataset,
    mesh: jax.sharding.Mesh | None = None,
    steps_per_call: int | None = None,
  ):
    """``steps_per_call``: train steps per compiled call (a ``lax.scan``).

    By default 1 on CPU, where XLA runs convolutions inside loops much slower (see
    docs/training.md#steps-per-call), and up to ``PROGRESS_EVERY`` elsewhere.
    """
    self.config = config
    self.dataset = dataset = config_dataset(dataset, config)
    self.mesh = sharding.make_mesh() if mesh is None else mesh
    for name in ('batch_size', 'eval_batch_size'):
      size = getattr(config, name)
      if size % self.mesh.size:
        logger.warning(
          '%s %d does not split over %d devices: every device computes whole '
          'batches (a size divisible by the device count is faster)',
          name,
          size,
          self.mesh.size,
        )
    self.steps_per_epoch = data_lib.num_batches(
      dataset.num_train, config.batch_size, config.drop_remainder
    )
    if self.steps_per_epoch < 1:
      raise _only_batch_dropped(config, dataset.num_train)
    self.tx = config_lib.make_optimizer(config, self.steps_per_epoch)[0]
    dtype = jnp.dtype(config.compute_dtype)
    self.model = models.get_model(
      config.model, num_classes=dataset.num_classes, width=config.width, dtype=dtype
    )
    replicated = sharding.replicated(self.mesh)
    put = lambda x: jax.device_put(x, replicated)  # noqa: E731
    self.train_images, self.train_labels = put(dataset.train_images), put(dataset.train_labels)
    # The test images, then the validation split's (none without ``validation_size``): one
    # array, so that the one compiled evaluation program serves both.
    self.eval_images = put(np.concatenate([dataset.test_images, dataset.validation_images]))
    self.eval_labels = put(np.concatenate([dataset.test_labels, dataset.validation_labels]))
    common: dict[str, Any] = dict(
      model=self.model, mean=dataset.mean, std=dataset.std, compute_dtype=dtype, mesh=self.mesh
    )
    # Callables of the per-batch arguments (a sweep's step also takes each member's tx).
    self._step: Callable[..., tuple[TrainState, dict[str, jax.Array]]]
    self._step = functools.partial(train_step, tx=self.tx, **common)
    self._eval: Callable[..., dict[str, jax.Array]] = functools.partial(eval_sums, **common)
    if steps_per_call is None:
      steps_per_call = 1 if jax.default_backend() == 'cpu' else PROGRESS_EVERY
    self.steps_per_call = steps_per_call
    self._train_chunk = jax.jit(self._train_chunk_impl, donate_argnums=0)
    self._train_one = jax.jit(self._train_one_impl, donate_argnums=0)
    self._eval_batch = jax.jit(self._eval_rows)
    self._augment = jax.jit(
      functools.partial(data_lib.augment, mean=dataset.mean, std=dataset.std, dtype=dtype)
    )

  # --- what the state trains: the hooks of ``train_runs`` and the compiled programs ---

  # False: a run whose loss diverges ends training (``faults.DivergedError``). True (a
  # sweep's trainer): ``freeze(state, diverged)`` freezes it while the other runs go on.
  freezes_diverged = False

  @abc.abstractmethod
  def init_state(self) -> StateT:
    """The initial state of every run."""

  @abc.abstractmethod
  def describe(self, state: StateT) -> str:
    """The model and optimizer, for the first progress line."""

  @abc.abstractmethod
  def run_steps(self, state: StateT) -> list[int]:
    """Each run's global step."""

  @abc.abstractmethod
  def frozen(self, state: StateT) -> list[bool]:
    """Which runs have diverged and stopped changing."""

  @abc.abstractmethod
  def freeze(self, state: StateT, diverged: np.ndarray) -> StateT:
    """``state`` with the runs marked in ``diverged`` (bool per run) frozen too."""

  @abc.abstractmethod
  def _epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray, jax.Array]:
    """``(indices[steps, ..., B], mask[steps, B], augmentation key(s))`` of an epoch."""

  @abc.abstractmethod
  def _batch_step(
    self,
    state: StateT,
    epoch_key: jax.Array,
    images: jax.Array,
    labels: jax.Array,
    indices: jax.Array,
    step_in_epoch: jax.Array,
  ) -> tuple[StateT, dict[str, jax.Array]]:
    """Gathers one batch on the device and trains on it (key from epoch and step)."""

  @abc.abstractmethod
  def _eval_state(
    self, state: StateT, images: jax.Array, labels: jax.Array, weights: jax.Array
  ) -> dict[str, jax.Array]:
    """The summed metrics of one evaluation batch, per run."""

  def _eval_rows(
    self,
    state: StateT,
    images: jax.Array,
    labels: jax.Array,
    rows: jax.Array,
    weights: jax.Array,
  ) -> dict[str, jax.Array]:
    """Gathers one evaluation batch on the device and sums its metrics."""
    return self._eval_state(state, images[rows], labels[rows], weights)

  def _train_chunk_impl(
    self,
    state: StateT,
    epoch_key: jax.Array,
    images: jax.Array,
    labels: jax.Array,
    batch_indices: jax.Array,
    steps: jax.Array,
  ) -> tuple[StateT, dict[str, jax.Array]]:
    """``lax.scan`` of train steps over rows of ``batch_indices``; sums the metrics."""

    def body(
      carry: tuple[StateT, dict[str, jax.Array]], xs: tuple[jax.Array, jax.Array]
    ) -> tuple[tuple[StateT, dict[str, jax.Array]], None]:
      state, totals = carry
      state, sums = self._batch_step(state, epoch_key, images, labels, *xs)
      return (state, jax.tree.map(jnp.add, totals, sums)), None

    # Zero sums shaped as one step's (one value per run): found by tracing, not run.
    shapes = jax.eval_shape(
      self._batch_step, state, epoch_key, images, labels, batch_indices[0], steps[0]
    )[1]
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    (state, totals), _ = jax.lax.scan(body, (state, zeros), (batch_indices, steps))
    return state, totals

  def _train_one_impl(
    self,
    state: StateT,
    epoch_key: jax.Array,
    images: jax.Array,
    labels: jax.Array,
    batch_indices: jax.Array,
    steps: jax.Array,
  ) -> tuple[StateT, dict[str, jax.Array]]:
    """The same as ``_train_chunk_impl`` for one row, without a loop."""
    return self._batch_step(state, epoch_key, images, labels, batch_indices[0], steps[0])

  # --- host-side loop -----------------------------------------------------------

  def _key(self, purpose: str, *indices: int) -> jax.Array:
    return derive_key(self.config.seed, purpose, *indices)

  def _epoch_rows(
    self, indices: np.ndarray, mask: np.ndarray
  ) -> tuple[np.ndarray, np.ndarray | None]:
    """The full batches' index rows ``[full, ..., B]`` and the last partial batch's real
    indices (``None`` without one): the authors keep it, at its own (smaller) shape."""
    full = self.dataset.num_train // self.config.batch_size
    if self.config.drop_remainder or full == len(indices):
      return indices[:full], None
    return indices[:full], indices[full][..., mask[full].astype(bool)]

  def train_epoch(
    self,
    state: StateT,
    epoch: int,
    progress: Callable[[str], None] = logger.info,
    observe: Callable[[int, np.ndarray], None] | None = None,
  ) -> tuple[StateT, dict[str, Any]]:
    """One pass over the training set (``epoch`` is 1-based); returns mean metrics.

    At each progress report, ``observe(step, loss)`` (if given) gets the global step and
    the epoch's mean train loss so far (one value per run: a scalar for one run). The
    metrics are floats for one run, lists of one per run for several.
    """
    indices, mask, epoch_key = self._epoch_plan(epoch)
    full_rows, partial_rows = self._epoch_rows(indices, mask)
    full = len(full_rows)
    chunk = _largest_divisor_at_most(full, self.steps_per_call) if full else 0
    start = time.perf_counter()
    plan = [(i, full_rows[i : i + chunk]) for i in range(0, full, chunk)] if full else []
    if partial_rows is not None:
      plan.append((full, partial_rows[None]))
    totals, reported = None, 0
    for calls, (first, rows) in enumerate(plan, 1):
      run = self._train_one if len(rows) == 1 else self._train_chunk
      steps = np.arange(first, first + len(rows), dtype=np.int32)
      state, sums = run(state, epoch_key, self.train_images, self.train_labels, rows, steps)
      totals = _accumulate(totals, sums, calls)
      done = first + len(rows)
      if done - reported >= PROGRESS_EVERY or done == self.steps_per_epoch:
        reported = done
        seen = jax.device_get(totals)
        images, loss = np.sum(seen['count']), seen['loss_sum'] / seen['count']
        progress(
          f'epoch {epoch} step {done}/{self.steps_per_epoch} loss {_describe(loss)} '
          f'({images / (time.perf_counter() - start):.1f} img/s)'
        )
        if observe is not None:
          observe((epoch - 1) * self.steps_per_epoch + done, loss)
    totals = jax.device_get(totals)
    return state, {
      'train_loss': (totals['loss_sum'] / totals['count']).tolist(),
      'train_accuracy': (totals['correct'] / totals['count']).tolist(),
      'train_seconds': time.perf_counter() - start,
    }

  def evaluate(self, state: StateT) -> dict[str, Any]:
    """Loss and top-1 error on the test set (``test_loss``, ``test_error``) and, with a
    ``validation_size``, on the validation split (``validation_loss``, ``validation_error``),
    in batches of ``eval_batch_size`` (floats for one run, lists of one per run for several)."""
    metrics = self._evaluate_split(state, 'test', 0, self.dataset.num_test)
    if self.config.validation_size:
      metrics.update(
        self._evaluate_split(
          state, 'validation', self.dataset.num_test, self.dataset.num_validation
        )
      )
    return metrics

  def _evaluate_split(self, state: StateT, split: str, first: int, size: int) -> dict[str, Any]:
    """``<split>_loss`` and ``<split>_error`` over rows ``first .. first + size - 1`` of the
    evaluation images."""
    indices, mask = data_lib.eval_batches(size, self.config.eval_batch_size)
    totals = None
    for calls, (rows, weights) in enumerate(
      zip(np.asarray(indices) + first, np.asarray(mask, np.float32), strict=True), 1
    ):
      sums = self._eval_batch(state, self.eval_images, self.eval_labels, rows, weights)
      totals = _accumulate(totals, sums, calls)
    sums = jax.device_get(totals)
    return {
      f'{split}_loss': (sums['loss_sum'] / sums['count']).tolist(),
      f'{split}_error': (1.0 - sums['correct'] / sums['count']).tolist(),
    }


class Trainer(TrainerBase[TrainState]):
  """Trains one run."""

  def init_state(self) -> TrainState:
    return init_train_state(
      self.model,
      self.tx,
      self._key('init'),
      self.dataset.image_shape,
      out_sharding=sharding.replicated(self.mesh),
    )

  def describe(self, state: TrainState) -> str:
    config = self.config
    return (
      f'{config.model} width {config.width}: '
      f'{models.count_params(state.params):,} parameters; {config.optimizer}'
    )

  def run_steps(self, state: TrainState) -> list[int]:
    return [int(state.step)]

  def frozen(self, state: TrainState) -> list[bool]:
    del state
    return [False]  # a diverged run stops training instead

  def freeze(self, state: TrainState, diverged: np.ndarray) -> TrainState:
    del diverged
    return state  # a diverged run stops training instead

  def _epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray, jax.Array]:
    indices, mask = data_lib.epoch_batches(
      self._key('shuffle', epoch),
      self.dataset.num_train,
      self.config.batch_size,
      drop_remainder=self.config.drop_remainder,
    )
    return np.asarray(indices), np.asarray(mask), self._key('augment', epoch)

  def _batch_step(
    self,
    state: TrainState,
    epoch_key: jax.Array,
    images: jax.Array,
    labels: jax.Array,
    indices: jax.Array,
    step_in_epoch: jax.Array,
  ) -> tuple[TrainState, dict[str, jax.Array]]:
    rng = jax.random.fold_in(epoch_key, step_in_epoch)
    return self._step(state, rng, images[indices], labels[indices])

  def _eval_state(
    self, state: TrainState, images: jax.Array, labels: jax.Array, weights: jax.Array
  ) -> dict[str, jax.Array]:
    return self._eval(state.params, state.batch_stats, images, labels, weights)

  def epoch_inputs(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(x, labels)`` of each step of ``epoch``: the augmented, normalised model inputs
    (NHWC) and labels that ``train_epoch`` trains on, for another framework to train on."""
    indices, mask, epoch_key = self._epoch_plan(epoch)
    full_rows, partial_rows = self._epoch_rows(indices, mask)
    rows = [*full_rows, *([] if partial_rows is None else [partial_rows])]
    for step, batch in enumerate(rows):
      x = self._augment(jax.random.fold_in(epoch_key, step), self.train_images[batch])
      yield np.asarray(x), np.asarray(self.train_labels[batch])


def config_dataset(dataset: data_lib.Dataset, config: config_lib.TrainConfig) -> data_lib.Dataset:
  """``dataset`` as ``config`` uses it: its last ``validation_size`` training images held
  out first, then cut to ``train_size`` / ``test_size`` (a no-op on a dataset it returned).

  A dataset with a validation split that ``config`` does not ask for is refused.
  """
  if dataset.num_validation and not config.validation_size:
    raise ValueError(
      f'{dataset.name} holds a validation split of {dataset.num_validation}, and '
      'validation_size is unset'
    )
  dataset = dataset.split_validation(config.validation_size)
  return dataset.subset(config.train_size, config.test_size)


def load_config_dataset(config: config_lib.TrainConfig) -> data_lib.Dataset:
  """The dataset a config names, as it uses it (``config_dataset``)."""
  dataset = config_dataset(data_lib.load_dataset(config.dataset, config.data_dir), config)
  if config.drop_remainder and config.batch_size > dataset.num_train:
    raise _only_batch_dropped(config, dataset.num_train)
  return dataset


def _only_batch_dropped(config: config_lib.TrainConfig, num_train: int) -> config_lib.ConfigError:
  return config_lib.ConfigError(
    'batch_size',
    f'{config.batch_size} exceeds the {num_train} training examples, and '
    'drop_remainder drops the only batch',
  )
