"""Hyperparameter grids: K configurations trained side by side in one compiled program.

A grid is a base ``TrainConfig`` and named axes (``{'learning_rate': [0.1, 0.01],
'seed': [0, 1]}``); its members are the product of the axes. In ``vmap`` mode the K
train states are stacked and one ``jax.vmap``-ed step trains them all: every member
sees the batches of its own seed (members that share a seed share the batches), and
the hyperparameters that vary are traced arrays fed to the same optimizer factory as
a single run (as ``optax.inject_hyperparams`` does, but before the learning-rate and p
schedules are built, so a schedule scales each member's own value). In ``sequential``
mode each member is an ordinary single run.

Either way each member has its own run directory, ``WORKDIR/<name>/``, with the same
``config.json`` and ``metrics.jsonl`` as a single run of it; ``WORKDIR/sweep.json``
lists them. A member whose loss diverges (as a single run's: ``faults.is_diverged``) is
frozen (its state stops changing) and its records say ``"diverged": true`` from that
epoch on; the others are not disturbed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import os
from typing import Any, Callable, Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from padam_jax.training import config as config_lib
from padam_jax import data as data_lib
from padam_jax.training import faults, hosts, loop, runlog, sharding, summaries

logger = logging.getLogger(__name__)

SWEEP_FILE = 'sweep.json'
MODES = ('auto', 'vmap', 'sequential')


class GridError(ValueError):
  """A grid axis that is not ``NAME=V1,V2,...`` with NAME a grid axis of the config."""


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
  """``['lr=0.1,0.01', 'seed=0,1']`` -> ``{'learning_rate': [0.1, 0.01], 'seed': [0, 1]}``.

  NAME is a field of ``config_lib.GRID_AXES``, by its short name (``lr``) or its own.
  A bad NAME raises ``GridError``; bad values, ``config_lib.ConfigError`` naming the field.
  """
  grid: dict[str, list[Any]] = {}
  for spec in specs:
    name, sep, values = spec.partition('=')
    field = config_lib.field_named(name.strip())
    if not sep or field not in config_lib.GRID_AXES:
      raise GridError(f'grid axis {spec!r}: expected NAME=V1,V2,... with NAME one of '
                      f'{", ".join(map(config_lib.short_name, config_lib.GRID_AXES))}')
    if field in grid:
      raise config_lib.ConfigError(field, 'is named twice in the grid')
    cast = config_lib.GRID_AXES[field]
    try:
      grid[field] = [cast(v) for v in values.split(',') if v.strip()]
    except ValueError:
      raise config_lib.ConfigError(
          field, f'takes {cast.__name__}s only; the grid gives {values!r}') from None
    if not grid[field]:
      raise config_lib.ConfigError(field, f'has no values in the grid ({spec!r})')
    if len(set(grid[field])) != len(grid[field]):
      raise config_lib.ConfigError(field, f'repeats a value in the grid ({spec!r})')
  return grid


def _value_name(value: Any) -> str:
  return repr(value)  # the shortest text that reads back as the same number


def member_name(values: dict[str, Any]) -> str:
  """Run-directory name of a member: its grid values, e.g. ``learning_rate=0.1,seed=0``."""
  return ','.join(f'{k}={_value_name(v)}' for k, v in values.items()) or 'base'


@dataclasses.dataclass(frozen=True)
class Member:
  """One configuration of a grid."""

  name: str
  values: dict[str, Any]  # the grid's values for this member
  config: config_lib.TrainConfig  # resolved


def expand(base: config_lib.TrainConfig, grid: dict[str, list[Any]]) -> list[Member]:
  """The resolved members of ``grid`` over ``base`` (product of the axes, in order)."""
  members = []
  for combination in itertools.product(*grid.values()):
    values = dict(zip(grid, combination))
    config = config_lib.resolve(dataclasses.replace(base, **values))
    members.append(Member(member_name(values), values, config))
  return members


class SweepState(flax.struct.PyTreeNode):
  """K stacked train states, their varying hyperparameters, which have diverged."""

  members: loop.TrainState
  hyper: dict[str, jax.Array]  # field -> float32[K]: arguments, not constants, of the program
  diverged: jax.Array  # bool[K]


class SweepTrainer(loop.Trainer):
  """A :class:`loop.Trainer` whose state is K members trained by one vmapped step."""

  def __init__(self, members: Sequence[Member], dataset: data_lib.Dataset, mesh=None,
               steps_per_call: Optional[int] = None):
    self.members = list(members)
    self.members_shape = (len(self.members),)
    super().__init__(self.members[0].config, dataset, mesh, steps_per_call)
    fields = sorted({f for m in self.members for f in m.values if f != 'seed'})
    varying = [f for f in fields if len({m.values[f] for m in self.members}) > 1]
    # The varying hyperparameters, one float32 array of K values each (traced in the step).
    self._hyper = {f: np.asarray([getattr(m.config, f) for m in self.members], np.float32)
                   for f in varying}
    self._seeds = np.asarray([m.config.seed for m in self.members], np.int32)
    self.schedules = [config_lib.make_optimizer(m.config, self.steps_per_epoch)[1:]
                      for m in self.members]

  def _member_tx(self, hyper: dict[str, jax.Array]):
    """The optimizer of one member, its varying hyperparameters traced."""
    config = dataclasses.replace(self.config, **hyper)
    return config_lib.make_optimizer(config, self.steps_per_epoch)[0]

  def init_state(self) -> SweepState:
    image_shape = self.dataset.image_shape

    @functools.partial(jax.jit, out_shardings=sharding.replicated(self.mesh))
    def init(hyper, seeds):
      def one(hyper, seed):
        return loop.init_train_state(self.model, self._member_tx(hyper),
                                      loop.derive_key(seed, 'init'), image_shape)
      return SweepState(members=jax.vmap(one)(hyper, seeds), hyper=hyper,
                        diverged=jnp.zeros(seeds.shape, bool))

    return init(self._hyper, self._seeds)

  def describe(self, state: SweepState) -> str:
    config = self.config
    return (f'{config.model} width {config.width}; {config.optimizer}; '
            f'{len(self.members)} runs in one program')

  def _epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray, jax.Array]:
    """Per-member index batches ``[steps, K, B]``, the shared mask, K augmentation keys."""
    plans = {}
    for seed in set(self._seeds.tolist()):
      indices, mask = data_lib.epoch_batches(
          loop.derive_key(seed, 'shuffle', epoch), self.dataset.num_train,
          self.config.batch_size, drop_remainder=self.config.drop_remainder)
      plans[seed] = np.asarray(indices), np.asarray(mask)
    indices = np.stack([plans[s][0] for s in self._seeds.tolist()], axis=1)
    keys = jax.vmap(lambda seed: loop.derive_key(seed, 'augment', epoch))(self._seeds)
    return indices, plans[int(self._seeds[0])][1], keys

  def _batch_step(self, state, epoch_key, images, labels, indices, step_in_epoch):
    def one(member, diverged, hyper, key, rows):
      rng = jax.random.fold_in(key, step_in_epoch)
      new, sums = self._step(member, rng, images[rows], labels[rows],
                             tx=self._member_tx(hyper))
      diverged = diverged | ~jnp.isfinite(sums['loss_sum'])
      new = jax.tree.map(lambda n, o: jnp.where(diverged, o, n), new, member)
      return new, diverged, sums

    members, diverged, sums = jax.vmap(one)(state.members, state.diverged, state.hyper,
                                           epoch_key, indices)
    return state.replace(members=members, diverged=diverged), sums

  def _eval_state(self, state, images, labels, weights):
    return jax.vmap(lambda m: self._eval(m.params, m.batch_stats, images, labels,
                                         weights))(state.members)


# --- the run directories ----------------------------------------------------------------

METRIC_KEYS = ('train_loss', 'train_accuracy', 'test_loss', 'test_error')


def member_record(epoch: int, step: int, metrics: dict[str, Any], k: int,
                  diverged: bool, learning_rate: Callable, partial: Optional[Callable],
                  first_step: int) -> dict[str, Any]:
  """Member ``k``'s epoch record, keyed as a single run's.

  A diverged member's record has ``"diverged": true`` and no metric values (null):
  its state holds the last finite-loss step, which says nothing about the epoch.
  """
  record = {'epoch': epoch, 'step': step, 'train_seconds': metrics['train_seconds'],
            **{key: None if diverged else metrics[key][k] for key in METRIC_KEYS},
            'learning_rate': float(learning_rate(first_step)),
            'partial': None if partial is None else float(partial(first_step))}
  if diverged:
    record['diverged'] = True
  return record


def _write_sweep_file(workdir: str, mode: str, grid: dict[str, list[Any]],
                      members: Sequence[Member], report: Callable[[str], None]) -> None:
  """Writes ``sweep.json``, or checks that a resumed sweep has the same grid and mode.

  A sequential sweep may grow (more seeds, say): its runs are independent, so the runs it
  holds are kept and the new ones added. A damaged file (not a JSON object of the same
  fields) is rewritten from this sweep's grid and mode. Either is said in one line to
  ``report``.
  """
  content = {'mode': mode, 'grid': grid,
             'runs': [{'name': m.name, 'values': m.values} for m in members]}
  path = os.path.join(workdir, SWEEP_FILE)
  if os.path.exists(path):
    previous = runlog.read_json_object(path)
    if previous is not None and set(previous) == set(content):
      if previous == content:
        return
      if not _grows(previous, content):
        raise runlog.ConfigMismatchError(
            f'{path} holds another sweep (mode {previous["mode"]!r}, grid '
            f'{previous["grid"]}); use a new --workdir or the same grid and mode (a '
            'sequential sweep may only grow)')
      report(f'{path}: {len(content["runs"]) - len(previous["runs"])} runs added to its '
             f'{len(previous["runs"])}')
    else:
      report(f'{path} is damaged; rewrote it from the grid and mode of this command')
  runlog.write_json(path, content)


def _grows(previous: dict[str, Any], content: dict[str, Any]) -> bool:
  """Whether ``content`` is the sequential sweep ``previous`` with runs added."""
  return (previous['mode'] == content['mode'] == 'sequential'
          and set(previous['grid']) == set(content['grid'])
          and all(run in content['runs'] for run in previous['runs']))


def read_sweep(workdir: str) -> dict[str, Any]:
  """``sweep.json`` of a sweep directory, with each run's directory as ``dir``."""
  with open(os.path.join(workdir, SWEEP_FILE), encoding='utf-8') as f:
    content = json.load(f)
  for run in content['runs']:
    run['dir'] = os.path.join(workdir, run['name'])
  return content


def is_complete(run_dir: str, config: config_lib.TrainConfig) -> bool:
  """Whether ``run_dir`` holds every epoch of ``config`` (or ended diverged)."""
  records = runlog.read_metrics(run_dir)
  return bool(records) and (len(records) >= config.epochs or
                            bool(records[-1].get('diverged')))


def choose_mode(mode: str, num_members: int) -> str:
  """``auto``: ``vmap`` on GPU/TPU; on CPU, ``sequential`` (measured faster there).

  ``python -m experiments.bench_sweep`` measures both; on the 2-core CPU machines
  this project is developed on, the vmapped program was the slower one.
  """
  if mode not in MODES:
    raise ValueError(f'unknown mode {mode!r}; choose one of {", ".join(MODES)}')
  if mode != 'auto':
    return mode
  if num_members == 1:
    return 'sequential'
  return 'sequential' if jax.default_backend() == 'cpu' else 'vmap'


def run_sweep(base: config_lib.TrainConfig, grid: dict[str, list[Any]], workdir: str,
              mode: str = 'auto', progress: Callable[[str], None] = logger.info,
              dataset: Optional[data_lib.Dataset] = None,
              steps_per_call: Optional[int] = None,
              tensorboard: bool = False) -> dict[str, list[dict[str, Any]]]:
  """Trains every member of ``grid`` over ``base`` in ``workdir``; resumable.

  Returns each member's records (``metrics.jsonl``) by member name. ``tensorboard``:
  also write TensorBoard summaries in each member's directory.
  """
  members = expand(base, grid)
  config = members[0].config
  progress = hosts.primary_only(progress)
  if dataset is None:  # before touching workdir: a failed launch leaves nothing behind
    dataset = loop.load_config_dataset(config)
  mode = choose_mode(mode, len(members))
  for member in members:  # a finished run with other settings is refused, not reused
    run_dir = os.path.join(workdir, member.name)
    if os.path.exists(os.path.join(run_dir, runlog.CONFIG_FILE)):
      loop.record_config(run_dir, member.config, resuming=True, report=progress)
  pending = [m for m in members if not is_complete(os.path.join(workdir, m.name), m.config)]
  if not pending:
    progress(f'{workdir}: all {len(members)} runs complete')
    return {m.name: runlog.read_metrics(os.path.join(workdir, m.name)) for m in members}
  os.makedirs(workdir, exist_ok=True)
  _write_sweep_file(workdir, mode, grid, members, progress)
  if mode == 'sequential':
    for i, member in enumerate(members):
      if member in pending:
        progress(f'run {i + 1}/{len(members)}: {member.name}')
        try:
          loop.train_and_evaluate(member.config, os.path.join(workdir, member.name),
                                   progress=progress, dataset=dataset,
                                   tensorboard=tensorboard)
        except faults.DivergedError as error:  # marked in its records; the others go on
          progress(f'diverged: {error}')
  else:
    _run_vmapped(members, workdir, progress, dataset, steps_per_call, tensorboard)
    hosts.barrier('sweep: metrics written')
  return {m.name: runlog.read_metrics(os.path.join(workdir, m.name)) for m in members}


def _run_vmapped(members: Sequence[Member], workdir: str, progress: Callable[[str], None],
                 dataset: data_lib.Dataset, steps_per_call: Optional[int],
                 tensorboard: bool) -> None:
  trainer = SweepTrainer(members, dataset, steps_per_call=steps_per_call)
  config = trainer.config
  dirs = [os.path.join(workdir, m.name) for m in members]
  with faults.StorageGuard(workdir) as guard, contextlib.ExitStack() as stack:
    boards = [stack.enter_context(summaries.RunSummaries(d, tensorboard)) for d in dirs]
    checkpointer, done, state = loop.open_runs(
        trainer, workdir, [(d, m.config, b) for d, m, b in zip(dirs, members, boards)],
        guard, progress)
    # Each member's train loss of epoch 1, which sets its divergence limit.
    firsts = [loop.first_train_loss(d) for d in dirs] if done else None
    for epoch in range(done + 1, config.epochs + 1):
      frozen = jax.device_get(state.diverged).tolist()
      if all(frozen):
        progress('every run of the sweep has diverged: stopping')
        break

      def observe(step, losses, frozen=frozen):  # members frozen before the epoch: no curve
        for board, loss, was_frozen in zip(boards, losses, frozen):
          if not was_frozen:
            board.train_loss(step, loss)

      first_step = (epoch - 1) * trainer.steps_per_epoch
      state, train_metrics = trainer.train_epoch(state, epoch, progress, observe)
      metrics = {**train_metrics, **trainer.evaluate(state)}
      # As a single run: a non-finite train or test loss, or a train loss beyond its
      # limit; the member stops changing.
      limit = faults.loss_limit(firsts, trainer.dataset.num_classes)
      state = state.replace(diverged=state.diverged | faults.is_diverged(
          metrics['train_loss'], metrics['test_loss'], limit))
      firsts = metrics['train_loss'] if firsts is None else firsts
      diverged = jax.device_get(state.diverged).tolist()
      steps = jax.device_get(state.members.step).tolist()
      for k, (run_dir, board) in enumerate(zip(dirs, boards)):
        record = member_record(epoch, steps[k], metrics, k, diverged[k],
                               *trainer.schedules[k], first_step)
        runlog.append_metrics(run_dir, record)
        board.epoch(record)
      checkpointer.save(epoch, state)
      guard.saved_epoch = epoch
      best = None if all(diverged) else int(np.nanargmin(
          np.where(diverged, np.nan, metrics['test_error'])))
      progress(f'epoch {epoch}/{config.epochs}: {sum(diverged)} of {len(members)} diverged'
               + ('' if best is None else f'; best {members[best].name}: test error '
                  f'{metrics["test_error"][best]:.4f}'))
    checkpointer.close()
