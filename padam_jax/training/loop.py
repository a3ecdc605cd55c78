"""Training: the train state, pure jitted train/eval steps, and the resumable epoch loop.

Data flow: config -> dataset as uint8 on the devices -> model + optimizer ->
``lax.scan`` over chunks of on-device batches (gather, crop/flip/normalise,
forward, backward, update; state donated) -> per-epoch metrics appended to
``WORKDIR/metrics.jsonl`` -> an Orbax checkpoint per epoch.

``train_step`` is a pure function of ``(state, rng, images, labels)``, so it can
be vmapped over a stack of states (several hyperparameter settings in one program).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from padam_jax.training import config as config_lib
from padam_jax import data as data_lib
from padam_jax import models
from padam_jax.training import faults, hosts, runlog, sharding, summaries
from padam_jax.training.checkpoint import Checkpointer

logger = logging.getLogger(__name__)

# A progress line (and a host round-trip) every this many steps, at most.
PROGRESS_EVERY = 40


class TrainState(flax.struct.PyTreeNode):
  """Everything that changes during training (randomness is derived from the step)."""

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def init_train_state(model: flax.linen.Module, tx: optax.GradientTransformation,
                     rng: jax.Array, image_shape: tuple[int, ...],
                     out_sharding: Any = None) -> TrainState:
  """Initial parameters, batch statistics and optimizer state (placed by ``out_sharding``)."""

  @functools.partial(jax.jit, out_shardings=out_sharding)
  def init(rng):
    variables = model.init(rng, jnp.zeros((1, *image_shape), jnp.float32), train=False)
    params = variables['params']
    return TrainState(step=jnp.zeros([], jnp.int32), params=params,
                      batch_stats=variables.get('batch_stats', {}),
                      opt_state=tx.init(params))

  return init(rng)


def _sums(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> dict[str, jax.Array]:
  losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32),
                                                           labels)
  correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  return {'loss_sum': jnp.sum(losses * weights),
          'correct': jnp.sum(correct * weights),
          'count': jnp.sum(weights)}


def train_step(state: TrainState, rng: jax.Array, images: jax.Array, labels: jax.Array,
               *, model: flax.linen.Module, tx: optax.GradientTransformation,
               mean, std, compute_dtype=jnp.float32, mesh=None
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step on a uint8 batch: augment, forward, backward, update.

  Returns the new state and the batch's summed loss, correct count and size.
  """
  if mesh is not None:
    images = sharding.constrain_batch(images, mesh)
    labels = sharding.constrain_batch(labels, mesh)
  with jax.named_scope('augment'):  # scope names label the ops in profiles
    x = data_lib.augment(rng, images, mean, std, dtype=compute_dtype)
  return update_step(state, x, labels, model=model, tx=tx)


def update_step(state: TrainState, x: jax.Array, labels: jax.Array, *,
                model: flax.linen.Module, tx: optax.GradientTransformation
                ) -> tuple[TrainState, dict[str, jax.Array]]:
  """The part of ``train_step`` after augmentation: forward, backward, update on the
  model inputs ``x`` (also fed by other pipelines, e.g. PyTorch's, in cross-checks)."""

  def loss_fn(params):
    logits, updates = model.apply({'params': params, 'batch_stats': state.batch_stats},
                                  x, train=True, mutable=['batch_stats'])
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), labels).mean()
    return loss, (logits, updates['batch_stats'])

  (_, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  with jax.named_scope('optimizer'):
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
  new_state = state.replace(step=state.step + 1, params=params,
                            batch_stats=batch_stats, opt_state=opt_state)
  return new_state, _sums(logits, labels, jnp.ones(labels.shape, jnp.float32))


def eval_sums(params: Any, batch_stats: Any, images: jax.Array, labels: jax.Array,
              weights: jax.Array, *, model: flax.linen.Module, mean, std,
              compute_dtype=jnp.float32, mesh=None) -> dict[str, jax.Array]:
  """Summed loss and correct predictions of one (masked) batch in eval mode."""
  if mesh is not None:
    images = sharding.constrain_batch(images, mesh)
  x = data_lib.normalize(images, mean, std, dtype=compute_dtype)
  logits = model.apply({'params': params, 'batch_stats': batch_stats}, x, train=False)
  return _sums(logits, labels, weights)


def _largest_divisor_at_most(n: int, limit: int) -> int:
  return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def _describe(values: np.ndarray) -> str:
  """One loss, or the range of K side-by-side losses."""
  values = np.asarray(values)
  if values.ndim == 0:
    return f'{values:.4f}'
  return f'{np.nanmin(values):.4f}..{np.nanmax(values):.4f} over {values.size} models'


def derive_key(seed: int, purpose: str, *indices: int) -> jax.Array:
  """The PRNG key of ``purpose`` (init, shuffle, augment) at ``indices`` (epoch, ...)."""
  key = jax.random.fold_in(jax.random.key(seed), ('init', 'shuffle', 'augment').index(purpose))
  for i in indices:
    key = jax.random.fold_in(key, i)
  return key


class Trainer:
  """Owns the compiled programs and the on-device data of one configuration."""

  def __init__(self, config: config_lib.TrainConfig, dataset: data_lib.Dataset,
               mesh=None, steps_per_call: Optional[int] = None):
    """``steps_per_call``: train steps per compiled call (a ``lax.scan``).

    By default 1 on CPU, where XLA runs convolutions inside loops about 30x
    slower (measured), and up to ``PROGRESS_EVERY`` elsewhere.
    """
    self.config = config
    self.dataset = dataset = dataset.subset(config.train_size, config.test_size)
    self.mesh = sharding.make_mesh() if mesh is None else mesh
    for name in ('batch_size', 'eval_batch_size'):
      size = getattr(config, name)
      if size % self.mesh.size:
        logger.warning('%s %d does not split over %d devices: every device computes whole '
                       'batches (a size divisible by the device count is faster)', name,
                       size, self.mesh.size)
    self.steps_per_epoch = data_lib.num_batches(dataset.num_train, config.batch_size,
                                                config.drop_remainder)
    if self.steps_per_epoch < 1:
      raise ValueError(f'batch_size {config.batch_size} exceeds the {dataset.num_train} '
                       'training examples and --drop_remainder drops the only batch')
    self.tx, self.learning_rate, self.partial = config_lib.make_optimizer(
        config, self.steps_per_epoch)
    dtype = jnp.dtype(config.compute_dtype)
    self.model = models.get_model(config.model, num_classes=dataset.num_classes,
                                  width=config.width, dtype=dtype)
    replicated = sharding.replicated(self.mesh)
    put = lambda x: jax.device_put(x, replicated)  # noqa: E731
    self.train_images, self.train_labels = put(dataset.train_images), put(
        dataset.train_labels)
    self.test_images, self.test_labels = put(dataset.test_images), put(
        dataset.test_labels)
    common = dict(model=self.model, mean=dataset.mean, std=dataset.std,
                  compute_dtype=dtype, mesh=self.mesh)
    self._step = functools.partial(train_step, tx=self.tx, **common)
    self._eval = functools.partial(eval_sums, **common)
    if steps_per_call is None:
      steps_per_call = 1 if jax.default_backend() == 'cpu' else PROGRESS_EVERY
    self.steps_per_call = steps_per_call
    self._train_chunk = jax.jit(self._train_chunk_impl, donate_argnums=0)
    self._train_one = jax.jit(self._train_one_impl, donate_argnums=0)
    self._eval_batch = jax.jit(self._eval_state)
    self._augment = jax.jit(functools.partial(
        data_lib.augment, mean=dataset.mean, std=dataset.std, dtype=dtype))

  # Shape of the per-batch metric sums: () for one model, (K,) for K side by side.
  members_shape: tuple[int, ...] = ()

  # --- compiled programs ------------------------------------------------------

  def _batch_step(self, state, epoch_key, images, labels, indices, step_in_epoch):
    """Gathers one batch on the device and trains on it (key from epoch and step)."""
    rng = jax.random.fold_in(epoch_key, step_in_epoch)
    return self._step(state, rng, images[indices], labels[indices])

  def _eval_state(self, state, images, labels, weights):
    return self._eval(state.params, state.batch_stats, images, labels, weights)

  def _train_chunk_impl(self, state, epoch_key, images, labels, batch_indices, steps):
    """``lax.scan`` of train steps over rows of ``batch_indices``; sums the metrics."""

    def body(carry, xs):
      state, totals = carry
      state, sums = self._batch_step(state, epoch_key, images, labels, *xs)
      return (state, jax.tree.map(jnp.add, totals, sums)), None

    zeros = {k: jnp.zeros(self.members_shape, jnp.float32)
             for k in ('loss_sum', 'correct', 'count')}
    (state, totals), _ = jax.lax.scan(body, (state, zeros), (batch_indices, steps))
    return state, totals

  def _train_one_impl(self, state, epoch_key, images, labels, batch_indices, steps):
    """The same as ``_train_chunk_impl`` for one row, without a loop."""
    return self._batch_step(state, epoch_key, images, labels, batch_indices[0], steps[0])

  # --- host-side loop -----------------------------------------------------------

  def init_state(self) -> TrainState:
    return init_train_state(self.model, self.tx, self._key('init'), self.dataset.image_shape,
                            out_sharding=sharding.replicated(self.mesh))

  def describe(self, state: TrainState) -> str:
    """The model and optimizer, for the first progress line."""
    config = self.config
    return (f'{config.model} width {config.width}: '
            f'{models.count_params(state.params):,} parameters; {config.optimizer}')

  def _key(self, purpose: str, *indices: int) -> jax.Array:
    return derive_key(self.config.seed, purpose, *indices)

  def _epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray, jax.Array]:
    """``(indices[steps, B], mask[steps, B], augmentation key)`` of an epoch."""
    indices, mask = data_lib.epoch_batches(self._key('shuffle', epoch),
                                           self.dataset.num_train, self.config.batch_size,
                                           drop_remainder=self.config.drop_remainder)
    return np.asarray(indices), np.asarray(mask), self._key('augment', epoch)

  def _epoch_rows(self, indices: np.ndarray, mask: np.ndarray
                  ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The full batches' index rows ``[full, ..., B]`` and the last partial batch's real
    indices (``None`` without one): the authors keep it, at its own (smaller) shape."""
    full = self.dataset.num_train // self.config.batch_size
    if self.config.drop_remainder or full == len(indices):
      return indices[:full], None
    return indices[:full], indices[full][..., mask[full].astype(bool)]

  def epoch_inputs(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(x, labels)`` of each step of ``epoch``: the augmented, normalised model inputs
    (NHWC) and labels that ``train_epoch`` trains on, for another framework to train on."""
    if self.members_shape:
      raise ValueError('epoch_inputs is defined for a single run, not a sweep')
    indices, mask, epoch_key = self._epoch_plan(epoch)
    full_rows, partial_rows = self._epoch_rows(indices, mask)
    rows = [*full_rows, *([] if partial_rows is None else [partial_rows])]
    for step, batch in enumerate(rows):
      x = self._augment(jax.random.fold_in(epoch_key, step), self.train_images[batch])
      yield np.asarray(x), np.asarray(self.train_labels[batch])

  def train_epoch(self, state: TrainState, epoch: int,
                  progress: Callable[[str], None] = logger.info,
                  observe: Optional[Callable[[int, np.ndarray], None]] = None
                  ) -> tuple[TrainState, dict[str, float]]:
    """One pass over the training set (``epoch`` is 1-based); returns mean metrics.

    At each progress report, ``observe(step, loss)`` (if given) gets the global step and
    the epoch's mean train loss so far (shape ``members_shape``).
    """
    indices, mask, epoch_key = self._epoch_plan(epoch)
    full_rows, partial_rows = self._epoch_rows(indices, mask)
    full = len(full_rows)
    chunk = _largest_divisor_at_most(full, self.steps_per_call) if full else 0
    start = time.perf_counter()
    plan = [(i, full_rows[i:i + chunk]) for i in range(0, full, chunk)] if full else []
    if partial_rows is not None:
      plan.append((full, partial_rows[None]))
    totals, reported = None, 0
    for first, rows in plan:
      run = self._train_one if len(rows) == 1 else self._train_chunk
      steps = np.arange(first, first + len(rows), dtype=np.int32)
      state, sums = run(state, epoch_key, self.train_images, self.train_labels,
                        rows, steps)
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
      done = first + len(rows)
      if done - reported >= PROGRESS_EVERY or done == self.steps_per_epoch:
        reported = done
        seen = jax.device_get(totals)
        images, loss = np.sum(seen['count']), seen['loss_sum'] / seen['count']
        progress(f'epoch {epoch} step {done}/{self.steps_per_epoch} loss {_describe(loss)} '
                 f'({images / (time.perf_counter() - start):.1f} img/s)')
        if observe is not None:
          observe((epoch - 1) * self.steps_per_epoch + done, loss)
    totals = jax.device_get(totals)
    return state, {'train_loss': (totals['loss_sum'] / totals['count']).tolist(),
                   'train_accuracy': (totals['correct'] / totals['count']).tolist(),
                   'train_seconds': time.perf_counter() - start}

  def evaluate(self, state: TrainState) -> dict[str, float]:
    """Loss and top-1 error on the test set, in batches of ``eval_batch_size``."""
    indices, mask = data_lib.eval_batches(self.dataset.num_test,
                                          self.config.eval_batch_size)
    totals = None
    for rows, weights in zip(np.asarray(indices), np.asarray(mask, np.float32)):
      sums = self._eval_batch(state, self.test_images[rows], self.test_labels[rows],
                              weights)
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    sums = jax.device_get(totals)
    return {'test_loss': (sums['loss_sum'] / sums['count']).tolist(),
            'test_error': (1.0 - sums['correct'] / sums['count']).tolist()}


def load_config_dataset(config: config_lib.TrainConfig) -> data_lib.Dataset:
  """The dataset a config names, cut to its ``train_size`` / ``test_size``."""
  dataset = data_lib.load_dataset(config.dataset, config.data_dir)
  dataset = dataset.subset(config.train_size, config.test_size)
  if config.drop_remainder and config.batch_size > dataset.num_train:
    raise ValueError(f'batch_size {config.batch_size} exceeds the {dataset.num_train} training '
                     'examples and --drop_remainder drops the only batch')
  return dataset


def record_config(workdir: str, config: config_lib.TrainConfig, resuming: bool,
                  report: Callable[[str], None] = logger.warning) -> None:
  """Writes ``config.json``; a resumed run must match it (but a longer constant run).

  A damaged ``config.json`` is rewritten from ``config``, said in one line to ``report``.
  """
  if config.schedules_depend_on_epochs():
    runlog.write_or_check_config(
        workdir, config.to_dict(), resuming=resuming, may_differ=('data_dir',),
        hint='the learning-rate or p schedule is laid out over --epochs', report=report)
  else:
    runlog.write_or_check_config(workdir, config.to_dict(), resuming=resuming,
                                 report=report)


def recorded_epochs(run_dir: str, report: Callable[[str], None]) -> int:
  """How many epochs ``run_dir/metrics.jsonl`` records intact; damage is said in one line."""
  records, problem = runlog.check_metrics(run_dir)
  if problem:
    report(f'{os.path.join(run_dir, runlog.METRICS_FILE)}: {problem}; its intact records '
           f'end at epoch {len(records)}, and the epochs after it are trained again')
  return len(records)


def first_train_loss(run_dir: str) -> Optional[float]:
  """The train loss of epoch 1 in ``run_dir/metrics.jsonl`` (None if not recorded)."""
  records = runlog.read_metrics(run_dir)
  return records[0]['train_loss'] if records else None


def open_runs(trainer: Trainer, workdir: str,
              runs: Sequence[tuple[str, config_lib.TrainConfig, summaries.RunSummaries]],
              guard: faults.StorageGuard, progress: Callable[[str], None]
              ) -> tuple[Checkpointer, int, Any]:
  """Resumes (or starts) training whose checkpoints are in ``workdir``.

  Writes or checks each run's ``config.json`` (``runs``: its directory, configuration
  and summaries), restores the newest readable checkpoint whose epochs every run
  records intact, drops the runs' records of later epochs and starts their summaries.
  Returns ``(checkpointer, epoch, state)``:
  epoch 0 and the initial state when nothing is saved yet.
  """
  checkpointer = Checkpointer(workdir, report=progress)
  guard.saved_epoch = checkpointer.latest_epoch() or 0
  for run_dir, config, _ in runs:
    os.makedirs(run_dir, exist_ok=True)
    record_config(run_dir, config, resuming=bool(guard.saved_epoch), report=progress)
  recorded = min(recorded_epochs(run_dir, progress) for run_dir, _, _ in runs)
  state = trainer.init_state()
  processes = jax.process_count()
  progress(f'{trainer.dataset!r}; {trainer.describe(state)}; {trainer.steps_per_epoch} '
           f'steps/epoch; {jax.device_count()} {jax.default_backend()} device(s)'
           + (f' in {processes} processes' if processes > 1 else ''))
  # Only a checkpoint whose epochs all have intact records: the others are trained again.
  done, state = checkpointer.restore_latest(state, up_to=recorded)
  guard.saved_epoch = done
  if done:
    progress(f'resumed from the checkpoint of epoch {done}')
  for run_dir, config, board in runs:
    runlog.keep_epochs_up_to(run_dir, done)
    if done < config.epochs:  # a finished run gets no new event file
      board.start(config.to_dict(), first_step=done * trainer.steps_per_epoch + 1)
  return checkpointer, done, state


def train_and_evaluate(config: config_lib.TrainConfig, workdir: str,
                       progress: Callable[[str], None] = logger.info,
                       dataset: Optional[data_lib.Dataset] = None,
                       tensorboard: bool = False) -> list[dict[str, Any]]:
  """Trains ``config`` in ``workdir``, resuming from its newest readable checkpoint.

  Rerunning with a larger ``epochs`` continues the same run (refused when a
  multistep or p schedule is laid out over ``epochs``: it would change the past).
  A non-finite train or test loss, or a train loss beyond ``faults.loss_limit``, marks
  the epoch's record ``"diverged": true``,
  saves no checkpoint and raises ``faults.DivergedError`` (again on every rerun);
  a failed write raises ``faults.StorageError``. Returns all epoch records of
  ``workdir/metrics.jsonl``. ``tensorboard``: also write TensorBoard summaries
  (``padam_jax.training.summaries``).
  """
  config = config_lib.resolve(config)
  progress = hosts.primary_only(progress)
  if dataset is None:  # before touching workdir: a failed launch leaves nothing behind
    dataset = load_config_dataset(config)
  trainer = Trainer(config, dataset)
  with (faults.StorageGuard(workdir) as guard,
        summaries.RunSummaries(workdir, tensorboard) as board):
    os.makedirs(workdir, exist_ok=True)
    diverged_in = runlog.diverged_record(workdir)
    if diverged_in:  # the same settings would diverge again: refuse, every time
      finite = not faults.is_diverged(diverged_in['train_loss'], diverged_in['test_loss'])
      raise faults.DivergedError(faults.diverged_message(
          workdir, diverged_in['epoch'], finite=finite, again=True))
    checkpointer, done, state = open_runs(trainer, workdir, [(workdir, config, board)],
                                          guard, progress)
    first_loss = first_train_loss(workdir) if done else None
    for epoch in range(done + 1, config.epochs + 1):
      first_step = (epoch - 1) * trainer.steps_per_epoch
      state, train_metrics = trainer.train_epoch(state, epoch, progress, board.train_loss)
      record = {'epoch': epoch, 'step': int(state.step), **train_metrics,
                **trainer.evaluate(state),
                'learning_rate': float(trainer.learning_rate(first_step)),
                'partial': (None if trainer.partial is None
                            else float(trainer.partial(first_step)))}
      limit = faults.loss_limit(first_loss, trainer.dataset.num_classes)
      diverged = faults.is_diverged(record['train_loss'], record['test_loss'], limit)
      if diverged:
        record['diverged'] = True
      runlog.append_metrics(workdir, record)
      board.epoch(record)
      if diverged:  # the diverged state is never saved
        finite = not faults.is_diverged(record['train_loss'], record['test_loss'])
        raise faults.DivergedError(faults.diverged_message(workdir, epoch, finite=finite))
      first_loss = record['train_loss'] if first_loss is None else first_loss
      checkpointer.save(epoch, state)
      guard.saved_epoch = epoch
      progress(f'epoch {epoch}/{config.epochs}: train loss {record["train_loss"]:.4f} '
               f'acc {record["train_accuracy"]:.4f}, test loss {record["test_loss"]:.4f} '
               f'error {record["test_error"]:.4f} ({record["train_seconds"]:.1f} s)')
    checkpointer.close()
  hosts.barrier('run: metrics written')
  return runlog.read_metrics(workdir)
