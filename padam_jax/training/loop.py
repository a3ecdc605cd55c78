"""Training: the train state, pure jitted train/eval steps, and the resumable epoch loop.

Data flow: config -> dataset as uint8 on the devices -> model + optimizer ->
``lax.scan`` over chunks of on-device batches (gather, crop/flip/normalise,
forward, backward, update; state donated) -> per-epoch metrics appended to
``WORKDIR/metrics.jsonl`` -> an Orbax checkpoint per epoch.

``train_step`` is a pure function of ``(state, rng, images, labels)``, so it can
be vmapped over a stack of states (several hyperparameter settings in one program,
``padam_jax.training.sweep``). ``train_runs`` is the one epoch loop: it trains what a
``Trainer`` trains (one run here, K side by side in a sweep) and writes every run's
records, summaries and checkpoints.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar, cast

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from padam_jax import data as data_lib
from padam_jax import models
from padam_jax.training import config as config_lib
from padam_jax.training import faults, hosts, runlog, sharding, summaries
from padam_jax.training.checkpoint import Checkpointer

logger = logging.getLogger(__name__)

# A progress line (and a host round-trip) every this many steps, at most.
PROGRESS_EVERY = 40
# The host waits for the devices every this many compiled calls (train chunks, evaluation
# batches), so that at most about twice as many launches (a call and the jitted add of its
# metrics) are queued per device. jaxlib's CPU client before 0.11 parks a launch beyond 32
# in flight per device on one of its pool threads; enough such launches take every thread
# and an all-reduce waits forever for a device that never gets one (docs/allreduce_hang.md).
CALLS_IN_FLIGHT = 8


class TrainState(flax.struct.PyTreeNode):
  """Everything that changes during training (randomness is derived from the step)."""

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def init_train_state(
  model: flax.linen.Module,
  tx: optax.GradientTransformation,
  rng: jax.Array,
  image_shape: tuple[int, ...],
  out_sharding: Any = None,
) -> TrainState:
  """Initial parameters, batch statistics and optimizer state (placed by ``out_sharding``)."""

  @functools.partial(jax.jit, out_shardings=out_sharding)
  def init(rng):
    variables = model.init(rng, jnp.zeros((1, *image_shape), jnp.float32), train=False)
    params = variables['params']
    return TrainState(
      step=jnp.zeros([], jnp.int32),
      params=params,
      batch_stats=variables.get('batch_stats', {}),
      opt_state=tx.init(params),
    )

  return init(rng)


def _sums(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> dict[str, jax.Array]:
  losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
  correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  return {
    'loss_sum': jnp.sum(losses * weights),
    'correct': jnp.sum(correct * weights),
    'count': jnp.sum(weights),
  }


def train_step(
  state: TrainState,
  rng: jax.Array,
  images: jax.Array,
  labels: jax.Array,
  *,
  model: flax.linen.Module,
  tx: optax.GradientTransformation,
  mean,
  std,
  compute_dtype=jnp.float32,
  mesh=None,
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


def update_step(
  state: TrainState,
  x: jax.Array,
  labels: jax.Array,
  *,
  model: flax.linen.Module,
  tx: optax.GradientTransformation,
) -> tuple[TrainState, dict[str, jax.Array]]:
  """The part of ``train_step`` after augmentation: forward, backward, update on the
  model inputs ``x`` (also fed by other pipelines, e.g. PyTorch's, in cross-checks)."""

  def loss_fn(params):
    logits, updates = model.apply(
      {'params': params, 'batch_stats': state.batch_stats}, x, train=True, mutable=['batch_stats']
    )
    loss = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), labels
    ).mean()
    return loss, (logits, updates['batch_stats'])

  (_, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  with jax.named_scope('optimizer'):
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
  new_state = state.replace(
    step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
  )
  return new_state, _sums(logits, labels, jnp.ones(labels.shape, jnp.float32))


def eval_sums(
  params: Any,
  batch_stats: Any,
  images: jax.Array,
  labels: jax.Array,
  weights: jax.Array,
  *,
  model: flax.linen.Module,
  mean,
  std,
  compute_dtype=jnp.float32,
  mesh=None,
) -> dict[str, jax.Array]:
  """Summed loss and correct predictions of one (masked) batch in eval mode."""
  if mesh is not None:
    images = sharding.constrain_batch(images, mesh)
  x = data_lib.normalize(images, mean, std, dtype=compute_dtype)
  # Without ``mutable``, ``apply`` returns the model's output alone.
  logits = cast(
    jax.Array, model.apply({'params': params, 'batch_stats': batch_stats}, x, train=False)
  )
  return _sums(logits, labels, weights)


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


def derive_key(seed: int, purpose: str, *indices: int) -> jax.Array:
  """The PRNG key of ``purpose`` (init, shuffle, augment) at ``indices`` (epoch, ...)."""
  key = jax.random.fold_in(jax.random.key(seed), ('init', 'shuffle', 'augment').index(purpose))
  for i in indices:
    key = jax.random.fold_in(key, i)
  return key


StateT = TypeVar('StateT')


class TrainerBase(abc.ABC, Generic[StateT]):
  """Owns the compiled programs and the on-device data of one configuration; a subclass
  says what its state trains (``Trainer``: one run; ``sweep.SweepTrainer``: K side by side).
  ``train_runs`` calls only the hooks defined here."""

  def __init__(
    self,
    config: config_lib.TrainConfig,
    dataset: data_lib.Dataset,
    mesh=None,
    steps_per_call: int | None = None,
  ):
    """``steps_per_call``: train steps per compiled call (a ``lax.scan``).

    By default 1 on CPU, where XLA runs convolutions inside loops much slower (see
    docs/training.md#steps-per-call), and up to ``PROGRESS_EVERY`` elsewhere.
    """
    self.config = config
    self.dataset = dataset = dataset.subset(config.train_size, config.test_size)
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
    self.test_images, self.test_labels = put(dataset.test_images), put(dataset.test_labels)
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
  def _batch_step(self, state: StateT, epoch_key, images, labels, indices, step_in_epoch):
    """Gathers one batch on the device and trains on it (key from epoch and step)."""

  @abc.abstractmethod
  def _eval_state(self, state: StateT, images, labels, weights):
    """The summed metrics of one evaluation batch, per run."""

  def _eval_rows(self, state, images, labels, rows, weights):
    """Gathers one evaluation batch on the device and sums its metrics."""
    return self._eval_state(state, images[rows], labels[rows], weights)

  def _train_chunk_impl(self, state, epoch_key, images, labels, batch_indices, steps):
    """``lax.scan`` of train steps over rows of ``batch_indices``; sums the metrics."""

    def body(carry, xs):
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

  def _train_one_impl(self, state, epoch_key, images, labels, batch_indices, steps):
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
    """Loss and top-1 error on the test set, in batches of ``eval_batch_size`` (floats for
    one run, lists of one per run for several)."""
    indices, mask = data_lib.eval_batches(self.dataset.num_test, self.config.eval_batch_size)
    totals = None
    for calls, (rows, weights) in enumerate(
      zip(np.asarray(indices), np.asarray(mask, np.float32), strict=True), 1
    ):
      sums = self._eval_batch(state, self.test_images, self.test_labels, rows, weights)
      totals = _accumulate(totals, sums, calls)
    sums = jax.device_get(totals)
    return {
      'test_loss': (sums['loss_sum'] / sums['count']).tolist(),
      'test_error': (1.0 - sums['correct'] / sums['count']).tolist(),
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

  def _batch_step(self, state, epoch_key, images, labels, indices, step_in_epoch):
    rng = jax.random.fold_in(epoch_key, step_in_epoch)
    return self._step(state, rng, images[indices], labels[indices])

  def _eval_state(self, state, images, labels, weights):
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


def load_config_dataset(config: config_lib.TrainConfig) -> data_lib.Dataset:
  """The dataset a config names, cut to its ``train_size`` / ``test_size``."""
  dataset = data_lib.load_dataset(config.dataset, config.data_dir)
  dataset = dataset.subset(config.train_size, config.test_size)
  if config.drop_remainder and config.batch_size > dataset.num_train:
    raise _only_batch_dropped(config, dataset.num_train)
  return dataset


def _only_batch_dropped(config: config_lib.TrainConfig, num_train: int) -> config_lib.ConfigError:
  return config_lib.ConfigError(
    'batch_size',
    f'{config.batch_size} exceeds the {num_train} training examples, and '
    'drop_remainder drops the only batch',
  )


def record_config(
  workdir: str,
  config: config_lib.TrainConfig,
  resuming: bool,
  report: Callable[[str], None] = logger.warning,
) -> None:
  """Writes ``config.json``; a resumed run must match it (but a longer constant run).

  A damaged ``config.json`` is rewritten from ``config``, said in one line to ``report``;
  one recorded under former names (the preset ``seed``) is read in today's.
  """
  if config.schedules_depend_on_epochs():
    runlog.write_or_check_config(
      workdir,
      config.to_dict(),
      resuming=resuming,
      may_differ=('data_dir',),
      hint='the learning-rate or p schedule is laid out over --epochs',
      report=report,
      upgrade=config_lib.from_record,
    )
  else:
    runlog.write_or_check_config(
      workdir, config.to_dict(), resuming=resuming, report=report, upgrade=config_lib.from_record
    )


def recorded_epochs(run_dir: str, report: Callable[[str], None]) -> int:
  """How many epochs ``run_dir/metrics.jsonl`` records intact; damage is said in one line."""
  records, problem = runlog.check_metrics(run_dir)
  if problem:
    report(
      f'{os.path.join(run_dir, runlog.METRICS_FILE)}: {problem}; its intact records '
      f'end at epoch {len(records)}, and the epochs after it are trained again'
    )
  return len(records)


def first_train_loss(run_dir: str) -> float | None:
  """The train loss of epoch 1 in ``run_dir/metrics.jsonl`` (None if not recorded)."""
  records = runlog.read_metrics(run_dir)
  return records[0]['train_loss'] if records else None


@dataclasses.dataclass(frozen=True)
class Run:
  """One run ``train_runs`` records: its directory, resolved configuration and name."""

  dir: str
  config: config_lib.TrainConfig
  name: str = ''


METRIC_KEYS = ('train_loss', 'train_accuracy', 'test_loss', 'test_error')


def _open_runs(
  trainer: TrainerBase[Any],
  workdir: str,
  runs: Sequence[Run],
  boards: Sequence[summaries.RunSummaries],
  guard: faults.StorageGuard,
  progress: Callable[[str], None],
) -> tuple[Checkpointer, int, Any]:
  """Resumes (or starts) training whose checkpoints are in ``workdir``.

  Writes or checks each run's ``config.json``, restores the newest readable checkpoint
  whose epochs every run records intact, drops the runs' records of later epochs and
  starts their summaries (``boards``). Returns ``(checkpointer, epoch, state)``:
  epoch 0 and the initial state when nothing is saved yet.
  """
  checkpointer = Checkpointer(workdir, report=progress)
  guard.saved_epoch = checkpointer.latest_epoch() or 0
  for run in runs:
    os.makedirs(run.dir, exist_ok=True)
    record_config(run.dir, run.config, resuming=bool(guard.saved_epoch), report=progress)
  recorded = min(recorded_epochs(run.dir, progress) for run in runs)
  state = trainer.init_state()
  processes = jax.process_count()
  progress(
    f'{trainer.dataset!r}; {trainer.describe(state)}; {trainer.steps_per_epoch} '
    f'steps/epoch; {jax.device_count()} {jax.default_backend()} device(s)'
    + (f' in {processes} processes' if processes > 1 else '')
  )
  # Only a checkpoint whose epochs all have intact records: the others are trained again.
  done, state = checkpointer.restore_latest(state, up_to=recorded)
  guard.saved_epoch = done
  if done:
    progress(f'resumed from the checkpoint of epoch {done}')
  for run, board in zip(runs, boards, strict=True):
    runlog.keep_epochs_up_to(run.dir, done)
    if done < config_lib.filled(run.config.epochs):  # a finished run gets no new event file
      board.start(run.config.to_dict(), first_step=done * trainer.steps_per_epoch + 1)
  return checkpointer, done, state


def _refuse_diverged(run_dir: str) -> None:
  """Raises ``DivergedError`` if ``run_dir`` records a diverged epoch: the same settings
  would diverge again, so such a run is refused every time."""
  diverged_in = runlog.diverged_record(run_dir)
  if diverged_in:
    finite = not faults.is_diverged(diverged_in['train_loss'], diverged_in['test_loss'])
    raise faults.DivergedError(
      faults.diverged_message(run_dir, diverged_in['epoch'], finite=finite, again=True)
    )


def _epoch_line(
  epoch: int, epochs: int, runs: Sequence[Run], records: list[dict[str, Any]], freezes: bool
) -> str:
  """The progress line of an epoch: one run's metrics or, when runs are frozen as they
  diverge (a sweep), how many have diverged and which has the lowest test error."""
  if not freezes:
    record = records[0]
    return (
      f'epoch {epoch}/{epochs}: train loss {record["train_loss"]:.4f} '
      f'acc {record["train_accuracy"]:.4f}, test loss {record["test_loss"]:.4f} '
      f'error {record["test_error"]:.4f} ({record["train_seconds"]:.1f} s)'
    )
  live = [k for k, record in enumerate(records) if not record.get('diverged')]
  line = f'epoch {epoch}/{epochs}: {len(records) - len(live)} of {len(runs)} diverged'
  if not live:
    return line
  best = min(live, key=lambda k: records[k]['test_error'])
  return f'{line}; best {runs[best].name}: test error {records[best]["test_error"]:.4f}'


def _epoch_records(
  epoch: int,
  first_step: int,
  metrics: dict[str, Any],
  steps: Sequence[int],
  diverged: np.ndarray,
  freezes: bool,
  schedules: Sequence[tuple[Callable, Callable | None]],
) -> list[dict[str, Any]]:
  """One ``metrics.jsonl`` record per run of an epoch's (possibly per-run) metrics."""
  values = {key: np.reshape(metrics[key], -1).tolist() for key in METRIC_KEYS}
  records = []
  for k, (learning_rate, partial) in enumerate(schedules):
    # A frozen run's state holds its last finite-loss step: nothing about the epoch.
    record = {
      'epoch': epoch,
      'step': steps[k],
      'train_seconds': metrics['train_seconds'],
      **{key: None if freezes and diverged[k] else values[key][k] for key in METRIC_KEYS},
      'learning_rate': float(learning_rate(first_step)),
      'partial': None if partial is None else float(partial(first_step)),
    }
    if diverged[k]:
      record['diverged'] = True
    records.append(record)
  return records


def train_runs(
  trainer: TrainerBase[Any],
  workdir: str,
  runs: Sequence[Run],
  progress: Callable[[str], None],
  tensorboard: bool = False,
) -> None:
  """The epoch loop: trains ``trainer``'s runs from their newest checkpoint in ``workdir``.

  Each epoch: train, evaluate, append each run's record to its ``metrics.jsonl`` (and
  TensorBoard summaries if ``tensorboard``), save one checkpoint of all runs, write a
  progress line. A diverged epoch (``faults.is_diverged``) is marked ``"diverged": true``
  in the run's record; then a single run stops with ``faults.DivergedError`` and no
  checkpoint (refused again on every rerun), while a trainer that ``freezes_diverged``
  freezes that run (no metric values in its records from then on) and goes on until
  every run has diverged. A failed write raises ``faults.StorageError``.
  """
  freezes = trainer.freezes_diverged
  epochs = config_lib.filled(trainer.config.epochs)
  schedules = [config_lib.make_optimizer(run.config, trainer.steps_per_epoch)[1:] for run in runs]
  with faults.StorageGuard(workdir) as guard, contextlib.ExitStack() as stack:
    boards = [stack.enter_context(summaries.RunSummaries(run.dir, tensorboard)) for run in runs]
    os.makedirs(workdir, exist_ok=True)
    if not freezes:
      for run in runs:
        _refuse_diverged(run.dir)
    checkpointer, done, state = _open_runs(trainer, workdir, runs, boards, guard, progress)
    # Each run's train loss of epoch 1, which sets its divergence limit.
    firsts: Any = [first_train_loss(run.dir) for run in runs] if done else None
    for epoch in range(done + 1, epochs + 1):
      frozen = trainer.frozen(state)
      if all(frozen):
        progress('every run of the sweep has diverged: stopping')
        break

      def observe(step, losses, frozen=frozen):  # runs frozen before the epoch: no curve
        for board, loss, was_frozen in zip(boards, np.reshape(losses, -1), frozen, strict=True):
          if not was_frozen:
            board.train_loss(step, loss)

      first_step = (epoch - 1) * trainer.steps_per_epoch
      state, train_metrics = trainer.train_epoch(state, epoch, progress, observe)
      metrics = {**train_metrics, **trainer.evaluate(state)}
      limit = faults.loss_limit(firsts, trainer.dataset.num_classes)
      newly = np.reshape(faults.is_diverged(metrics['train_loss'], metrics['test_loss'], limit), -1)
      firsts = metrics['train_loss'] if firsts is None else firsts
      state = trainer.freeze(state, newly)
      diverged = np.asarray(trainer.frozen(state)) | newly
      records = _epoch_records(
        epoch, first_step, metrics, trainer.run_steps(state), diverged, freezes, schedules
      )
      for run, board, record in zip(runs, boards, records, strict=True):
        runlog.append_metrics(run.dir, record)
        board.epoch(record)
      if not freezes and diverged[0]:  # the diverged state is never saved
        finite = not faults.is_diverged(records[0]['train_loss'], records[0]['test_loss'])
        raise faults.DivergedError(faults.diverged_message(runs[0].dir, epoch, finite=finite))
      checkpointer.save(epoch, state)
      guard.saved_epoch = epoch
      progress(_epoch_line(epoch, epochs, runs, records, freezes))
    checkpointer.close()


def train_and_evaluate(
  config: config_lib.TrainConfig,
  workdir: str,
  progress: Callable[[str], None] = logger.info,
  dataset: data_lib.Dataset | None = None,
  tensorboard: bool = False,
) -> list[dict[str, Any]]:
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
  train_runs(Trainer(config, dataset), workdir, [Run(workdir, config)], progress, tensorboard)
  hosts.barrier('run: metrics written')
  return runlog.read_metrics(workdir)
