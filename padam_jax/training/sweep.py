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

import dataclasses
import functools
import itertools
import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, cast

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from padam_jax import data as data_lib
from padam_jax.distributed import hosts, sharding
from padam_jax.rundir import faults, runlog
from padam_jax.training import config as config_lib
from padam_jax.training import loop
from padam_jax.training import trainer as trainer_lib
from padam_jax.training.steps import TrainState, derive_key, init_train_state

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
      raise GridError(
        f'grid axis {spec!r}: expected NAME=V1,V2,... with NAME one of '
        f'{", ".join(map(config_lib.short_name, config_lib.GRID_AXES))}'
      )
    if field in grid:
      raise config_lib.ConfigError(field, 'is named twice in the grid')
    cast = config_lib.GRID_AXES[field]
    try:
      grid[field] = [cast(v) for v in values.split(',') if v.strip()]
    except ValueError:
      raise config_lib.ConfigError(
        field, f'takes {cast.__name__}s only; the grid gives {values!r}'
      ) from None
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
  config: config_lib.ResolvedConfig


def expand(base: config_lib.TrainConfig, grid: dict[str, list[Any]]) -> list[Member]:
  """The resolved members of ``grid`` over ``base`` (product of the axes, in order)."""
  members = []
  for combination in itertools.product(*grid.values()):
    values = dict(zip(grid, combination, strict=True))
    config = config_lib.resolve(dataclasses.replace(base, **values))
    members.append(Member(member_name(values), values, config))
  return members


class SweepState(flax.struct.PyTreeNode):
  """K stacked train states, their varying hyperparameters, which have diverged."""

  members: TrainState
  hyper: dict[str, jax.Array]  # field -> float32[K]: arguments, not constants, of the program
  diverged: jax.Array  # bool[K]


class SweepTrainer(trainer_lib.TrainerBase[SweepState]):
  """A trainer whose state is K members trained by one vmapped step."""

  def __init__(
    self,
    members: Sequence[Member],
    dataset: data_lib.Dataset,
    mesh: jax.sharding.Mesh | None = None,
    steps_per_call: int | None = None,
  ):
    self.members = list(members)
    super().__init__(self.members[0].config, dataset, mesh, steps_per_call)
    fields = sorted({f for m in self.members for f in m.values if f != 'seed'})
    varying = [f for f in fields if len({m.values[f] for m in self.members}) > 1]
    # The varying hyperparameters, one float32 array of K values each (traced in the step).
    self._hyper = {
      f: np.asarray([getattr(m.config, f) for m in self.members], np.float32) for f in varying
    }
    self._seeds = np.asarray([m.config.seed for m in self.members], np.int32)

  # A diverged member is frozen (its state stops changing); the others go on.
  freezes_diverged = True

  def run_steps(self, state: SweepState) -> list[int]:
    return jax.device_get(state.members.step).tolist()

  def frozen(self, state: SweepState) -> list[bool]:
    return jax.device_get(state.diverged).tolist()

  def freeze(self, state: SweepState, diverged: np.ndarray) -> SweepState:
    """``state`` with the members marked in ``diverged`` (bool[K]) frozen too."""
    return state.replace(diverged=state.diverged | diverged)

  def _member_tx(self, hyper: dict[str, jax.Array]) -> optax.GradientTransformation:
    """The optimizer of one member, its varying hyperparameters traced."""
    # Traced values stand in for the config's numbers: the optimizer factories take either.
    config = dataclasses.replace(self.config, **cast(dict[str, Any], hyper))
    return config_lib.make_optimizer(config, self.steps_per_epoch)[0]

  def init_state(self) -> SweepState:
    image_shape = self.dataset.image_shape

    @functools.partial(jax.jit, out_shardings=sharding.replicated(self.mesh))
    def init(hyper: dict[str, jax.Array], seeds: jax.Array) -> SweepState:
      def one(hyper: dict[str, jax.Array], seed: jax.Array) -> TrainState:
        return init_train_state(
          self.model, self._member_tx(hyper), derive_key(seed, 'init'), image_shape
        )

      return SweepState(
        members=jax.vmap(one)(hyper, seeds), hyper=hyper, diverged=jnp.zeros(seeds.shape, bool)
      )

    return init(self._hyper, self._seeds)

  def describe(self, state: SweepState) -> str:
    config = self.config
    return (
      f'{config.model} width {config.width}; {config.optimizer}; '
      f'{len(self.members)} runs in one program'
    )

  def _epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray, jax.Array]:
    """Per-member index batches ``[steps, K, B]``, the shared mask, K augmentation keys."""
    plans = {}
    for seed in set(self._seeds.tolist()):
      indices, mask = data_lib.epoch_batches(
        derive_key(seed, 'shuffle', epoch),
        self.dataset.num_train,
        self.config.batch_size,
        drop_remainder=self.config.drop_remainder,
      )
      plans[seed] = np.asarray(indices), np.asarray(mask)
    stacked = np.stack([plans[s][0] for s in self._seeds.tolist()], axis=1)
    keys = jax.vmap(lambda seed: derive_key(seed, 'augment', epoch))(self._seeds)
    return stacked, plans[int(self._seeds[0])][1], keys

  def _batch_step(
    self,
    state: SweepState,
    epoch_key: jax.Array,
    images: jax.Array,
    labels: jax.Array,
    indices: jax.Array,
    step_in_epoch: jax.Array,
  ) -> tuple[SweepState, dict[str, jax.Array]]:
    def one(
      member: TrainState,
      diverged: jax.Array,
      hyper: dict[str, jax.Array],
      key: jax.Array,
      rows: jax.Array,
    ) -> tuple[TrainState, jax.Array, dict[str, jax.Array]]:
      rng = jax.random.fold_in(key, step_in_epoch)
      new, sums = self._step(member, rng, images[rows], labels[rows], tx=self._member_tx(hyper))
      diverged = diverged | ~jnp.isfinite(sums['loss_sum'])
      new = jax.tree.map(lambda n, o: jnp.where(diverged, o, n), new, member)
      return new, diverged, sums

    members, diverged, sums = jax.vmap(one)(
      state.members, state.diverged, state.hyper, epoch_key, indices
    )
    return state.replace(members=members, diverged=diverged), sums

  def _eval_state(
    self, state: SweepState, images: jax.Array, labels: jax.Array, weights: jax.Array
  ) -> dict[str, jax.Array]:
    return jax.vmap(lambda m: self._eval(m.params, m.batch_stats, images, labels, weights))(
      state.members
    )


# --- the run directories ----------------------------------------------------------------


def _write_sweep_file(
  workdir: str,
  mode: str,
  grid: dict[str, list[Any]],
  members: Sequence[Member],
  report: Callable[[str], None],
) -> None:
  """Writes ``sweep.json``, or checks that a resumed sweep has the same grid and mode.

  A sequential sweep may grow (more seeds, say): its runs are independent, so the runs it
  holds are kept and the new ones added. A damaged file (not a JSON object of the same
  fields) is rewritten from this sweep's grid and mode. Either is said in one line to
  ``report``.
  """
  content = {
    'mode': mode,
    'grid': grid,
    'runs': [{'name': m.name, 'values': m.values} for m in members],
  }
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
          'sequential sweep may only grow)'
        )
      report(
        f'{path}: {len(content["runs"]) - len(previous["runs"])} runs added to its '
        f'{len(previous["runs"])}'
      )
    else:
      report(f'{path} is damaged; rewrote it from the grid and mode of this command')
  runlog.write_json(path, content)


def _grows(previous: dict[str, Any], content: dict[str, Any]) -> bool:
  """Whether ``content`` is the sequential sweep ``previous`` with runs added."""
  return (
    previous['mode'] == content['mode'] == 'sequential'
    and set(previous['grid']) == set(content['grid'])
    and all(run in content['runs'] for run in previous['runs'])
  )


def read_sweep(workdir: str) -> dict[str, Any]:
  """``sweep.json`` of a sweep directory, with each run's directory as ``dir``."""
  with open(os.path.join(workdir, SWEEP_FILE), encoding='utf-8') as f:
    content = json.load(f)
  for run in content['runs']:
    run['dir'] = os.path.join(workdir, run['name'])
  return content


def is_complete(run_dir: str, config: config_lib.ResolvedConfig) -> bool:
  """Whether ``run_dir`` holds every epoch of ``config`` (or ended diverged)."""
  records = runlog.read_metrics(run_dir)
  return bool(records) and (len(records) >= config.epochs or bool(records[-1].get('diverged')))


def choose_mode(mode: str, num_members: int) -> str:
  """``auto``: ``vmap`` on GPU/TPU; on CPU, ``sequential``, where the vmapped program
  was measured the slower one (``python -m benchmarks.bench_sweep`` measures both; see
  docs/sweeps.md#timing-vmap-against-sequential).
  """
  if mode not in MODES:
    raise ValueError(f'unknown mode {mode!r}; choose one of {", ".join(MODES)}')
  if mode != 'auto':
    return mode
  if num_members == 1:
    return 'sequential'
  return 'sequential' if jax.default_backend() == 'cpu' else 'vmap'


def run_sweep(
  base: config_lib.TrainConfig,
  grid: dict[str, list[Any]],
  workdir: str,
  mode: str = 'auto',
  progress: Callable[[str], None] = logger.info,
  dataset: data_lib.Dataset | None = None,
  steps_per_call: int | None = None,
  tensorboard: bool = False,
) -> dict[str, list[dict[str, Any]]]:
  """Trains every member of ``grid`` over ``base`` in ``workdir``; resumable.

  Returns each member's records (``metrics.jsonl``) by member name. ``tensorboard``:
  also write TensorBoard summaries in each member's directory.
  """
  members = expand(base, grid)
  config = members[0].config
  progress = hosts.primary_only(progress)
  if dataset is None:  # before touching workdir: a failed launch leaves nothing behind
    dataset = trainer_lib.load_config_dataset(config)
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
          loop.train_and_evaluate(
            member.config,
            os.path.join(workdir, member.name),
            progress=progress,
            dataset=dataset,
            tensorboard=tensorboard,
          )
        except faults.DivergedError as error:  # marked in its records; the others go on
          progress(f'diverged: {error}')
  else:
    _run_vmapped(members, workdir, progress, dataset, steps_per_call, tensorboard)
    hosts.barrier('sweep: metrics written')
  return {m.name: runlog.read_metrics(os.path.join(workdir, m.name)) for m in members}


def _run_vmapped(
  members: Sequence[Member],
  workdir: str,
  progress: Callable[[str], None],
  dataset: data_lib.Dataset,
  steps_per_call: int | None,
  tensorboard: bool,
) -> None:
  trainer = SweepTrainer(members, dataset, steps_per_call=steps_per_call)
  runs = [loop.Run(os.path.join(workdir, m.name), m.config, m.name) for m in members]
  loop.train_runs(trainer, workdir, runs, progress, tensorboard)
