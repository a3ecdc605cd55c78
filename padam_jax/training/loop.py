"""The resumable epoch loop and the records of the run directories.

``train_runs`` is the one epoch loop: it trains what a trainer trains (one run, or K
side by side in a sweep) and writes every run's records (``config.json``, one
``metrics.jsonl`` line per epoch), TensorBoard summaries and an Orbax checkpoint per
epoch. ``train_and_evaluate`` trains one configuration with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from padam_jax import data as data_lib
from padam_jax.distributed import hosts
from padam_jax.rundir import faults, lock, runlog, summaries
from padam_jax.rundir.checkpoint import Checkpointer
from padam_jax.training import config as config_lib
from padam_jax.training import trainer as trainer_lib

logger = logging.getLogger(__name__)


def _config_rules(config: config_lib.ResolvedConfig) -> dict[str, Any]:
  """How a saved ``config.json`` must match ``config`` (``runlog.check_config``): a longer
  run may extend a constant one, not one whose schedules are laid out over the epochs."""
  rules: dict[str, Any] = dict(
    upgrade=config_lib.from_record, optional=config_lib.RECORDED_WHEN_SET
  )
  if config.schedules_depend_on_epochs():
    rules.update(
      may_differ=('data_dir',), hint='the learning-rate or p schedule is laid out over --epochs'
    )
  return rules


def record_config(
  workdir: str,
  config: config_lib.ResolvedConfig,
  resuming: bool,
  report: Callable[[str], None] = logger.warning,
) -> None:
  """Writes ``config.json``; a resumed run must match it (but a longer constant run).

  A damaged ``config.json`` is rewritten from ``config``, said in one line to ``report``;
  one recorded under former names (the preset ``seed``) is read in today's, and one
  recorded before a field of ``config_lib.RECORDED_WHEN_SET`` existed reads it as unset.
  """
  runlog.write_or_check_config(
    workdir, config.to_dict(), resuming=resuming, report=report, **_config_rules(config)
  )


def check_config(workdir: str, config: config_lib.ResolvedConfig) -> bool:
  """Whether ``workdir`` holds an intact ``config.json`` (``ConfigMismatchError`` if one of
  other settings), by ``record_config``'s rules; writes nothing."""
  return runlog.check_config(workdir, config.to_dict(), **_config_rules(config))


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
  config: config_lib.ResolvedConfig
  name: str = ''


METRIC_KEYS = ('train_loss', 'train_accuracy', 'test_loss', 'test_error')
# Recorded only by runs with a ``validation_size``.
VALIDATION_KEYS = ('validation_loss', 'validation_error')


def _open_runs(
  trainer: trainer_lib.TrainerBase[Any],
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
    if done < run.config.epochs:  # a finished run gets no new event file
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
    validation = (
      f', validation error {record["validation_error"]:.4f}' if 'validation_error' in record else ''
    )
    return (
      f'epoch {epoch}/{epochs}: train loss {record["train_loss"]:.4f} '
      f'acc {record["train_accuracy"]:.4f}, test loss {record["test_loss"]:.4f} '
      f'error {record["test_error"]:.4f}{validation} ({record["train_seconds"]:.1f} s)'
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
  """One ``metrics.jsonl`` record per run of an epoch's (possibly per-run) metrics
  (``VALIDATION_KEYS`` where ``metrics`` has them)."""
  keys = [*METRIC_KEYS, *(key for key in VALIDATION_KEYS if key in metrics)]
  values = {key: np.reshape(metrics[key], -1).tolist() for key in keys}
  records = []
  for k, (learning_rate, partial) in enumerate(schedules):
    # A frozen run's state holds its last finite-loss step: nothing about the epoch.
    record = {
      'epoch': epoch,
      'step': steps[k],
      'train_seconds': metrics['train_seconds'],
      **{key: None if freezes and diverged[k] else values[key][k] for key in keys},
      'learning_rate': float(learning_rate(first_step)),
      'partial': None if partial is None else float(partial(first_step)),
    }
    if diverged[k]:
      record['diverged'] = True
    records.append(record)
  return records


def train_runs(
  trainer: trainer_lib.TrainerBase[Any],
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
  every run has diverged. A failed write raises ``faults.StorageError``; another process
  training in ``workdir`` or a run's directory, ``faults.RunDirBusyError`` (``rundir.lock``).
  """
  freezes = trainer.freezes_diverged
  epochs = trainer.config.epochs
  schedules = [config_lib.make_optimizer(run.config, trainer.steps_per_epoch)[1:] for run in runs]
  with faults.StorageGuard(workdir) as guard, contextlib.ExitStack() as stack:
    stack.enter_context(lock.held([workdir, *(run.dir for run in runs)]))
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

      # Runs frozen before the epoch: no curve.
      def observe(step: int, losses: np.ndarray, frozen: list[bool] = frozen) -> None:
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
  (``padam_jax.rundir.summaries``).
  """
  config = config_lib.resolve(config)
  progress = hosts.primary_only(progress)
  if dataset is None:  # before touching workdir: a failed launch leaves nothing behind
    dataset = trainer_lib.load_config_dataset(config)
  train_runs(
    trainer_lib.Trainer(config, dataset), workdir, [Run(workdir, config)], progress, tensorboard
  )
  hosts.barrier('run: metrics written')
  return runlog.read_metrics(workdir)
