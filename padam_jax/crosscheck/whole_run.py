"""Whole training runs in JAX and in PyTorch, seed by seed, and whether they agree.

``run`` trains S seeds of one configuration in each framework, seed by seed: ours with
the project's own training (``padam_jax.training.loop.train_and_evaluate``, as a
sequential sweep over the seeds, the faster mode on CPU), the other with the PyTorch
oracle (``padam_jax.reference.training``). Each run's records land in
``WORKDIR/jax/seed=<s>/`` and ``WORKDIR/torch/seed=<s>/`` (``config.json``,
``metrics.jsonl``), so ``python -m experiments.plot --workdirs ...`` draws both.

Where each side's batches come from (``BATCHES``):

* ``own``: each framework shuffles, augments and initialises its model on its own;
* ``jax``: PyTorch trains on our augmented batches from our initial weights;
* ``torch``: we train on PyTorch's batches from PyTorch's initial weights.

The two controls remove the data pipeline and the initial weights as a source of
difference, which leaves the model and optimizer numerics.

``compare`` reduces each run to the mean of its last ``final_epochs`` epochs and
tests, per measure, whether JAX minus PyTorch lies within a margin
(``padam_jax.stats.equivalence``: equivalent / different / undecided, and
the seeds an undecided test would need).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from padam_jax import data as data_lib
from padam_jax import stats
from padam_jax.distributed import sharding
from padam_jax.reproduction import measures
from padam_jax.rundir import faults, runlog
from padam_jax.training import config as config_lib
from padam_jax.training import loop, sweep
from padam_jax.training import trainer as trainer_lib
from padam_jax.training.steps import TrainState, update_step

if TYPE_CHECKING:
  import torch

  from padam_jax.reference.training import TorchRun

BATCHES = ('own', 'jax', 'torch')
FRAMEWORKS = ('jax', 'torch')
LABELS = {'jax': 'JAX', 'torch': 'PyTorch'}


# Each run's numbers, one per epoch; a loss's margin is relative to PyTorch's mean, an
# accuracy's in points.
MEASURES = (
  measures.Measure('train_loss', 'train loss', 4),
  measures.Measure('train_accuracy', 'train accuracy (%)', 2),
  measures.Measure('test_loss', 'test loss', 4),
  measures.Measure('test_accuracy', 'test accuracy (%)', 2),
)


def run_dir(workdir: str, framework: str, seed: int) -> str:
  """The run directory of one seed in one framework."""
  return os.path.join(workdir, framework, sweep.member_name({'seed': seed}))


def _seed_config(base: config_lib.TrainConfig, seed: int) -> config_lib.ResolvedConfig:
  return config_lib.resolve(dataclasses.replace(base, seed=seed))


def _variables(state: TrainState) -> dict[str, Any]:
  return jax.tree.map(np.asarray, {'params': state.params, 'batch_stats': state.batch_stats})


def torch_inputs(
  pairs: Iterable[tuple[np.ndarray, np.ndarray]],
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
  """Our ``(x NHWC, labels)`` batches as PyTorch's ``(x NCHW, int64 labels)``."""
  import torch

  from padam_jax.reference import training

  for x, labels in pairs:
    yield training.nchw(x), torch.from_numpy(np.asarray(labels, np.int64))


def _is_done(
  workdir: str, config: config_lib.ResolvedConfig, progress: Callable[[str], None]
) -> bool:
  """Whether ``workdir`` holds every epoch of ``config`` (refused if another config)."""
  if not os.path.exists(os.path.join(workdir, runlog.CONFIG_FILE)):
    return False
  loop.record_config(workdir, config, resuming=True, report=progress)
  return sweep.is_complete(workdir, config)


def train_torch_side(
  base: config_lib.TrainConfig,
  seed: int,
  dataset: data_lib.Dataset,
  workdir: str,
  batches: str,
  progress: Callable[[str], None],
) -> TorchRun | None:
  """One seed of the PyTorch side (``batches``: ``own`` or ``jax``); returns the run
  (``None`` when its directory already held it)."""
  from padam_jax.reference import training

  config = _seed_config(base, seed)
  directory = run_dir(workdir, 'torch', seed)
  if _is_done(directory, config, progress):
    progress(f'{directory}: complete')
    return None
  feed, initial = None, None
  if batches == 'jax':
    trainer = trainer_lib.Trainer(config, dataset)
    initial = _variables(trainer.init_state())
    feed = lambda epoch: torch_inputs(trainer.epoch_inputs(epoch))  # noqa: E731
  return training.train_torch(config, dataset, directory, feed, initial, progress)


def train_jax_on_torch_batches(
  base: config_lib.TrainConfig,
  seed: int,
  dataset: data_lib.Dataset,
  workdir: str,
  progress: Callable[[str], None],
) -> TrainState | None:
  """One seed of our side trained on PyTorch's batches from PyTorch's initial weights
  (those of the PyTorch run of the same seed); returns the final state (``None`` when
  its directory already held the run)."""
  from padam_jax.reference import training

  config = _seed_config(base, seed)
  directory = run_dir(workdir, 'jax', seed)
  if _is_done(directory, config, progress):
    progress(f'{directory}: complete')
    return None
  trainer = trainer_lib.Trainer(config, dataset)
  _, learning_rate, partial = config_lib.make_optimizer(config, trainer.steps_per_epoch)
  source = training.TorchRun(config, trainer.dataset)  # the twin run's seed: its batches
  state = trainer.init_state()
  state = jax.device_put(
    state.replace(**source.variables(_variables(state))), sharding.replicated(trainer.mesh)
  )
  step = jax.jit(functools.partial(update_step, model=trainer.model, tx=trainer.tx))
  os.makedirs(directory, exist_ok=True)
  runlog.keep_epochs_up_to(directory, 0)
  loop.record_config(directory, config, resuming=False)
  for epoch in range(1, config.epochs + 1):
    first_step = int(state.step)
    totals = {'loss_sum': 0.0, 'correct': 0.0, 'count': 0.0}
    start = time.perf_counter()
    for x, labels in source.own_batches():
      state, sums = step(
        state,
        jnp.asarray(x.permute(0, 2, 3, 1).numpy()),
        jnp.asarray(labels.numpy().astype(np.int32)),
      )
      totals = {k: totals[k] + float(v) for k, v in sums.items()}
    record = {
      'epoch': epoch,
      'step': int(state.step),
      'train_loss': totals['loss_sum'] / totals['count'],
      'train_accuracy': totals['correct'] / totals['count'],
      'train_seconds': time.perf_counter() - start,
      **trainer.evaluate(state),
      'learning_rate': float(learning_rate(first_step)),
      'partial': None if partial is None else float(partial(first_step)),
    }
    runlog.append_metrics(directory, record)
    progress(
      f'jax (torch batches) seed {seed} epoch {epoch}/{config.epochs}: train loss '
      f'{record["train_loss"]:.4f}, test error {record["test_error"]:.4f}'
    )
  return state


SETTINGS_FILE = 'whole_run.json'


def record_batches(workdir: str, batches: str) -> None:
  """Writes ``WORKDIR/whole_run.json``; a WORKDIR holding runs of other batches is refused
  (their run directories alone do not say where their batches came from)."""
  path = os.path.join(workdir, SETTINGS_FILE)
  previous = runlog.read_json_object(path) if os.path.exists(path) else None
  if previous is not None and previous.get('batches') != batches:
    raise runlog.ConfigMismatchError(
      f'{path} holds runs with --batches {previous.get("batches")!r}, not {batches!r}; '
      'use another --workdir'
    )
  os.makedirs(workdir, exist_ok=True)
  runlog.write_json(path, {'batches': batches})


def run(
  base: config_lib.TrainConfig,
  seeds: Sequence[int],
  workdir: str,
  batches: str = 'own',
  dataset: data_lib.Dataset | None = None,
  progress: Callable[[str], None] = print,
) -> None:
  """Trains every seed in both frameworks into ``workdir`` (finished runs are kept)."""
  if batches not in BATCHES:
    raise ValueError(f'unknown batches {batches!r}; choose one of {", ".join(BATCHES)}')
  if not seeds or len(set(seeds)) != len(seeds):
    raise ValueError(f'seeds must be distinct and at least one, got {list(seeds)}')
  from padam_jax.reference import training

  config = _seed_config(base, seeds[0])  # validates before any work
  training.check_supported(config)
  if dataset is None:
    dataset = trainer_lib.load_config_dataset(config)
  record_batches(workdir, batches)
  for seed in seeds:  # seed by seed, so that the seeds finished so far can be compared
    directory = run_dir(workdir, 'jax', seed)
    if batches == 'torch':
      train_jax_on_torch_batches(base, seed, dataset, workdir, progress)
    elif _is_done(directory, _seed_config(base, seed), progress):
      progress(f'{directory}: complete')
    else:
      try:
        loop.train_and_evaluate(
          _seed_config(base, seed), directory, progress=progress, dataset=dataset
        )
      except faults.DivergedError as error:  # marked in its records
        progress(f'diverged: {error}')
    train_torch_side(
      base, seed, dataset, workdir, 'own' if batches == 'torch' else batches, progress
    )


# --- the report ------------------------------------------------------------------------


def read_runs(workdir: str, seeds: Sequence[int]) -> dict[str, list[list[dict[str, Any]]]]:
  """Each framework's records, one list per seed."""
  runs: dict[str, list[list[dict[str, Any]]]] = {}
  for framework in FRAMEWORKS:
    runs[framework] = []
    for seed in seeds:
      records = runlog.read_metrics(run_dir(workdir, framework, seed))
      if not records:
        raise ValueError(f'no records in {run_dir(workdir, framework, seed)}')
      runs[framework].append(records)
  epochs = {len(r) for side in runs.values() for r in side}
  if len(epochs) != 1:
    raise ValueError(f'the runs hold different numbers of epochs: {sorted(epochs)}')
  return runs


def _mean_std(values: Sequence[float], decimals: int) -> str:
  mean, std = measures.over_seeds(np.asarray(values, np.float64))
  if len(values) < 2:
    return f'{mean:.{decimals}f}'
  return f'{mean:.{decimals}f} ± {std:.{decimals}f}'


def epoch_table(runs: dict[str, list[list[dict[str, Any]]]]) -> str:
  """Markdown: per epoch, each measure's mean ± std over seeds in each framework."""
  columns = [f'{m.label} {LABELS[f]}' for m in MEASURES for f in FRAMEWORKS]
  lines = [f'| epoch | {" | ".join(columns)} |', f'|---:|{"---:|" * len(columns)}']
  for e in range(len(runs['jax'][0])):
    cells = [
      _mean_std([m.value(seed[e]) for seed in runs[f]], m.decimals)
      for m in MEASURES
      for f in FRAMEWORKS
    ]
    lines.append(f'| {e + 1} | {" | ".join(cells)} |')
  return '\n'.join(lines)


@dataclasses.dataclass(frozen=True)
class Comparison:
  """One measure: each framework's per-seed final values, the margin and the test."""

  measure: measures.Measure
  values: dict[str, list[float]]
  test: stats.Equivalence


def final_value(
  records: Sequence[dict[str, Any]], measure: measures.Measure, final_epochs: int
) -> float:
  """The mean of ``measure`` over the last ``final_epochs`` epochs of one run."""
  return measure.over(records[-final_epochs:])


def compare(
  runs: dict[str, list[list[dict[str, Any]]]],
  final_epochs: int,
  margin_points: float,
  margin_relative: float,
) -> list[Comparison]:
  """Per measure, TOST of JAX minus PyTorch (final values) against its margin."""
  epochs = len(runs['jax'][0])
  if not 1 <= final_epochs <= epochs:
    raise ValueError(f'final_epochs must lie in 1..{epochs}, got {final_epochs}')
  comparisons = []
  for measure in MEASURES:
    values = {f: [final_value(r, measure, final_epochs) for r in runs[f]] for f in FRAMEWORKS}
    margin = (
      margin_points
      if measure.is_accuracy
      else margin_relative * abs(float(np.nanmean(values['torch'])))
    )
    test = stats.equivalence([values['jax'], values['torch']], [1, -1], margin)
    comparisons.append(Comparison(measure, values, test))
  return comparisons


def overall_verdict(comparisons: Sequence[Comparison]) -> str:
  """Different if any measure is; equivalent if every measure is; else undecided."""
  verdicts = [c.test.verdict for c in comparisons]
  if stats.DIFFERENT in verdicts:
    return stats.DIFFERENT
  if all(v == stats.EQUIVALENT for v in verdicts):
    return stats.EQUIVALENT
  return stats.UNDECIDED


def comparison_table(comparisons: Sequence[Comparison]) -> str:
  """Markdown: per measure, both means, the difference, its intervals, margin, verdict."""
  lines = [
    '| measure | JAX | PyTorch | JAX − PyTorch | 90% interval | 95% interval | '
    'margin | verdict | seeds needed |',
    '|---|---:|---:|---:|---:|---:|---:|---|---:|',
  ]
  for c in comparisons:
    d, test = c.measure.decimals, c.test

    def interval(i: stats.Interval, d: int = d) -> str:
      return 'n/a' if i.low is None else f'[{i.low:+.{d}f}, {i.high:+.{d}f}]'

    needed = (
      '—'
      if test.verdict != stats.UNDECIDED
      else 'over 1000'
      if test.seeds_needed is None
      else str(test.seeds_needed)
    )
    lines.append(
      f'| {c.measure.label} | {_mean_std(c.values["jax"], d)} | '
      f'{_mean_std(c.values["torch"], d)} | {test.inner.estimate:+.{d}f} | '
      f'{interval(test.inner)} | {interval(test.outer)} | ±{test.margin:.{d}f} | '
      f'{test.verdict} | {needed} |'
    )
  return '\n'.join(lines)


def report(
  workdir: str,
  seeds: Sequence[int],
  final_epochs: int,
  margin_points: float,
  margin_relative: float,
) -> tuple[str, str]:
  """``(Markdown report, overall verdict)`` of the runs in ``workdir``."""
  runs = read_runs(workdir, seeds)
  comparisons = compare(runs, final_epochs, margin_points, margin_relative)
  verdict = overall_verdict(comparisons)
  epochs = len(runs['jax'][0])
  last = f'epoch {epochs}' if final_epochs == 1 else f'epochs {epochs - final_epochs + 1}-{epochs}'
  text = '\n'.join(
    [
      f'Per epoch, mean ± std over {len(seeds)} seeds ({", ".join(map(str, seeds))}):',
      '',
      epoch_table(runs),
      '',
      f'Final values: each run\'s mean over {last}; JAX − PyTorch with Welch intervals '
      f'over seeds; margins ±{margin_points:g} points (accuracies), ±{100 * margin_relative:g}% '
      f'of PyTorch\'s mean (losses). Equivalent: the 90% interval (TOST, alpha '
      f'{stats.ALPHA:g}) inside the margin; different: the 95% interval wholly beyond it; '
      'otherwise undecided (seeds needed: per framework, were the means and spreads as '
      'measured).',
      '',
      comparison_table(comparisons),
      '',
      f'verdict: {verdict}',
    ]
  )
  return text, verdict


REPORT_FILE = 'report.md'


def write_report(workdir: str, text: str) -> str:
  """Writes ``text`` to ``WORKDIR/report.md``; returns the path."""
  path = os.path.join(workdir, REPORT_FILE)
  runlog.write_atomically(path, text + '\n')
  return path
