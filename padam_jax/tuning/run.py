"""A tuning study end to end: its trials, each optimizer's winner chosen on the validation
split, the winners' reruns on fresh seeds, and the record of it.

    WORKDIR/trials/<optimizer>/trials.json   the drawn settings (a resumed search checks them)
    WORKDIR/trials/<optimizer>/trial=<i>/    one run per trial
    WORKDIR/reruns/<optimizer>/seed=<s>/     the winner on each of the study's rerun seeds
    WORKDIR/tuning.json                      winners, their settings, every trial's score
    WORKDIR/report.md, trials.png            written by ``padam_jax.tuning.report``

Each run is an ordinary run directory trained by ``loop.train_and_evaluate``, one after the
other: a finished run is skipped, an interrupted one resumes from its checkpoint, and a run
directory that holds other settings is refused. The draws are fixed by the study, so a
killed search resumes to the same trials and, once they are trained, the same winners.
A winner is chosen on ``validation_error`` alone (``selection.validation_score``): the
test set is read only in the reruns' report.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from padam_jax import data as data_lib
from padam_jax.distributed import hosts
from padam_jax.reproduction import suites
from padam_jax.rundir import faults, runlog
from padam_jax.training import config as config_lib
from padam_jax.training import loop, sweep
from padam_jax.training import trainer as trainer_lib
from padam_jax.tuning import report, search, selection
from padam_jax.tuning.studies import Study

TRIALS_DIR = 'trials'
RERUNS_DIR = 'reruns'
TRIALS_FILE = 'trials.json'
TUNING_FILE = 'tuning.json'


@dataclasses.dataclass(frozen=True)
class Search:
  """One optimizer's part of a study: its space, drawn settings and their trials' configs."""

  space: search.SearchSpace
  settings: list[dict[str, Any]]
  trials: list[config_lib.ResolvedConfig]  # one per setting, trained with the trial seed

  @property
  def optimizer(self) -> str:
    return self.space.optimizer

  def rerun(self, winner: int, seed: int) -> config_lib.ResolvedConfig:
    """The winning trial's configuration with another seed."""
    return dataclasses.replace(self.trials[winner], seed=seed)


@dataclasses.dataclass(frozen=True)
class Selection:
  """An optimizer's trials as scored on the validation split, and the best of them."""

  optimizer: str
  scores: list[float]  # validation accuracy (%) per trial; NaN: diverged
  winner: int
  setting: dict[str, Any]
  on_edge: list[str]  # the searched fields whose range the winner lies at an end of


def trial_dir(workdir: str, optimizer: str, index: int) -> str:
  return os.path.join(workdir, TRIALS_DIR, optimizer, f'trial={index}')


def rerun_dir(workdir: str, optimizer: str, seed: int) -> str:
  return os.path.join(workdir, RERUNS_DIR, optimizer, f'seed={seed}')


def base_config(
  study: Study,
  optimizer: str,
  data_dir: str | None = None,
  overrides: Mapping[str, Any] | None = None,
) -> config_lib.TrainConfig:
  """What every run of ``study`` with ``optimizer`` shares: its model, scale, preset,
  validation split and trial seed; ``overrides``, further fields (a test's batch size)."""
  fields: dict[str, Any] = dict(
    model=study.model,
    **suites.SCALES[study.scale].fields(),
    preset=study.preset,
    validation_size=study.validation_size,
    optimizer=optimizer,
    seed=study.trial_seed,
    data_dir=data_dir,
  )
  return config_lib.TrainConfig(**{**fields, **(overrides or {})})


def plan(
  study: Study,
  optimizers: Sequence[str] | None = None,
  data_dir: str | None = None,
  overrides: Mapping[str, Any] | None = None,
) -> dict[str, Search]:
  """The searches of ``optimizers`` (default: all of the study's), every trial resolved:
  a bad setting or an optimizer the study does not search raises ``ValueError``."""
  spaces = search.spaces_by_optimizer(study.spaces)
  chosen = list(optimizers or spaces)
  unknown = [name for name in chosen if name not in spaces]
  if unknown:
    raise ValueError(f'study {study.name} searches {", ".join(spaces)}; not {", ".join(unknown)}')
  searches = {}
  for name in chosen:
    base = base_config(study, name, data_dir, overrides)
    settings = search.draw(spaces[name], study.trials, study.draw_seed)
    trials = [config_lib.resolve(dataclasses.replace(base, **s)) for s in settings]
    searches[name] = Search(spaces[name], settings, trials)
  return searches


def describe(setting: Mapping[str, Any]) -> str:
  """``'learning_rate 0.0123, partial 0.2'``: a setting in a progress line."""
  return ', '.join(
    f'{field} {value:.4g}' if isinstance(value, float) else f'{field} {value}'
    for field, value in setting.items()
  )


def check_workdir(workdir: str) -> None:
  """Refuses a ``workdir`` that is a file, or a folder that holds files but no study."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f'workdir {workdir} is a file, not a folder')
  if (
    os.path.isdir(workdir)
    and os.listdir(workdir)
    and not os.path.isdir(os.path.join(workdir, TRIALS_DIR))
  ):
    raise ValueError(
      f'workdir {workdir} holds files but no tuning study ({TRIALS_DIR}/): give an empty or '
      'new folder'
    )


def _trials_content(study: Study, found: Search) -> dict[str, Any]:
  """What ``trials.json`` of ``found`` holds."""
  return {
    'study': study.name,
    'space': found.space.describe(),
    'draw_seed': study.draw_seed,
    'trials': found.settings,
  }


def record_trials(study: Study, found: Search, workdir: str, report: Callable[[str], None]) -> None:
  """Writes ``trials.json`` of ``found``, or checks that it holds the same draws.

  Other draws (another study, space or seed) raise ``runlog.ConfigMismatchError``; a
  damaged file is rewritten, said in one line to ``report``.
  """
  content = _trials_content(study, found)
  path = os.path.join(workdir, TRIALS_DIR, found.optimizer, TRIALS_FILE)
  if os.path.exists(path):
    previous = runlog.read_json_object(path)
    if previous == content:
      return
    if previous is None:
      report(f'{path} is damaged; rewrote it from the study')
    else:
      raise runlog.ConfigMismatchError(
        f'{path} holds other trials (study {previous.get("study")!r}, '
        f'{previous.get("space")!r}, draw seed {previous.get("draw_seed")!r}) than study '
        f'{study.name} draws; use a new --workdir'
      )
  os.makedirs(os.path.dirname(path), exist_ok=True)
  runlog.write_json(path, content)


def train_run(
  config: config_lib.ResolvedConfig,
  run_dir: str,
  label: str,
  progress: Callable[[str], None],
  dataset: data_lib.Dataset,
  tensorboard: bool = False,
) -> None:
  """Trains one run unless it is complete (a diverged run is said and left as it is);
  a run directory that holds other settings raises ``runlog.ConfigMismatchError``."""
  if os.path.exists(os.path.join(run_dir, runlog.CONFIG_FILE)):
    loop.record_config(run_dir, config, resuming=True, report=progress)
  if sweep.is_complete(run_dir, config):
    progress(f'{label}: complete')
    return
  try:
    loop.train_and_evaluate(config, run_dir, progress, dataset, tensorboard)
  except faults.DivergedError as error:  # marked in its records; scored NaN
    progress(f'{label}: diverged: {error}')


def trial_score(run_dir: str, config: config_lib.ResolvedConfig, share: float) -> float:
  """A finished trial's validation accuracy (%), NaN if it diverged; a trial without
  validation records raises ``ValueError`` (a winner is never chosen on the test set)."""
  records = runlog.read_metrics(run_dir)
  if records and records[-1].get('diverged'):
    return math.nan
  if len(records) < config.epochs:
    raise ValueError(f'{run_dir} holds {len(records)} of {config.epochs} epochs: not finished')
  try:
    return selection.validation_score(records[: config.epochs], share)
  except ValueError as error:
    raise ValueError(
      f'{run_dir}: {error}; a trial is scored on its validation split alone'
    ) from None


def select(study: Study, found: Search, workdir: str) -> Selection:
  """The optimizer's winner: the trial of the highest validation accuracy (the first on a
  tie); ``ValueError`` if every trial diverged."""
  scores = [
    trial_score(trial_dir(workdir, found.optimizer, i), config, study.selection_share)
    for i, config in enumerate(found.trials)
  ]
  try:
    winner = selection.best(scores)
  except ValueError as error:
    raise ValueError(f'{found.optimizer}: {error} (every trial diverged)') from None
  setting = found.settings[winner]
  return Selection(found.optimizer, scores, winner, setting, search.on_edge(found.space, setting))


def _finite_or_none(value: float) -> float | None:
  return value if math.isfinite(value) else None


def _trial_entry(workdir: str, name: str, index: int, setting: Any, score: float) -> dict[str, Any]:
  return {
    'dir': os.path.relpath(trial_dir(workdir, name, index), workdir),
    'setting': setting,
    'validation_accuracy': _finite_or_none(score),
  }


def summary(study: Study, searches: Mapping[str, Search], workdir: str) -> dict[str, Any]:
  """The content of ``tuning.json``: the epochs of every run; each optimizer whose trials
  are all finished (``optimizers``), with every trial's setting and validation accuracy
  (null: diverged), its winner, the winner's setting and edges, and its reruns (whether
  each has finished); and the finished trials of every other one (``under_way``, each
  with its ``index``), with no winner."""
  optimizers, under_way = {}, {}
  for name, found in searches.items():
    finished = [
      i for i, c in enumerate(found.trials) if sweep.is_complete(trial_dir(workdir, name, i), c)
    ]
    if len(finished) < len(found.trials):
      under_way[name] = [
        {'index': i}
        | _trial_entry(
          workdir,
          name,
          i,
          found.settings[i],
          trial_score(trial_dir(workdir, name, i), found.trials[i], study.selection_share),
        )
        for i in finished
      ]
      continue
    chosen = select(study, found, workdir)
    optimizers[name] = {
      'winner': chosen.winner,
      'setting': chosen.setting,
      'on_edge': chosen.on_edge,
      'trials': [
        _trial_entry(workdir, name, i, setting, score)
        for i, (setting, score) in enumerate(zip(found.settings, chosen.scores, strict=True))
      ],
      'reruns': [
        {
          'seed': seed,
          'dir': os.path.relpath(rerun_dir(workdir, name, seed), workdir),
          'complete': sweep.is_complete(
            rerun_dir(workdir, name, seed), found.rerun(chosen.winner, seed)
          ),
        }
        for seed in study.rerun_seeds
      ],
    }
  epochs = next(iter(searches.values())).trials[0].epochs
  return {'study': study.name, 'epochs': epochs, 'optimizers': optimizers, 'under_way': under_way}


def write_record(
  study: Study,
  workdir: str,
  searches: Mapping[str, Search],
  progress: Callable[[str], None] = print,
  paste_into: Sequence[str] = (),
) -> dict[str, Any]:
  """Writes ``tuning.json`` (returned) and the report from the runs in ``workdir``: every
  optimizer of ``searches`` whose trials are all finished, and the finished trials of the
  others (``summary``); pastes the report into each page of ``paste_into``
  (``report.paste``)."""
  content = summary(study, searches, workdir)
  if hosts.is_primary():
    runlog.write_json(os.path.join(workdir, TUNING_FILE), content)
    written = report.write(study, workdir, content)
    progress(f'tuning: {os.path.join(workdir, TUNING_FILE)}\nreport: {written}')
    for page in paste_into:
      report.paste(page, workdir)
      progress(f'pasted into {page}')
  return content


def run_study(
  study: Study,
  workdir: str,
  *,
  optimizers: Sequence[str] | None = None,
  trials_only: bool = False,
  data_dir: str | None = None,
  overrides: Mapping[str, Any] | None = None,
  progress: Callable[[str], None] = print,
  dataset: data_lib.Dataset | None = None,
  tensorboard: bool = False,
  paste_into: Sequence[str] = (),
) -> dict[str, Any]:
  """Trains the trials of ``optimizers`` (default: all of the study's), chooses each one's
  winner and, unless ``trials_only``, reruns it on the study's rerun seeds; then writes
  ``tuning.json`` (returned) and the report of every optimizer trained so far, and pastes
  the report into each page of ``paste_into``.

  Resumable: rerunning trains only what is missing. Everything is validated before the
  first run: a bad ``workdir``, an unknown optimizer, a missing dataset or a page without
  a place for the report raise before any file is written.
  """
  progress = hosts.primary_only(progress)
  if hosts.is_primary():  # the one that pastes
    report.check_pages(paste_into)
  check_workdir(workdir)
  searches = plan(study, optimizers, data_dir, overrides)
  everything = plan(study, None, data_dir, overrides)  # the report's
  if dataset is None:  # before touching workdir: a failed launch leaves nothing behind
    dataset = trainer_lib.load_config_dataset(next(iter(searches.values())).trials[0])
  runs = len(searches) * (study.trials + (0 if trials_only else len(study.rerun_seeds)))
  start, done = time.perf_counter(), 0

  def train(config: config_lib.ResolvedConfig, run_dir: str, what: str) -> None:
    nonlocal done
    done += 1
    label = f'[{done}/{runs}] {what}'
    progress(f'{label} ({time.perf_counter() - start:.0f} s so far)')
    train_run(config, run_dir, label, progress, dataset, tensorboard)

  for name, found in searches.items():
    record_trials(study, found, workdir, progress)
    for i, (setting, config) in enumerate(zip(found.settings, found.trials, strict=True)):
      what = f'{name} trial {i + 1}/{study.trials} ({describe(setting)})'
      train(config, trial_dir(workdir, name, i), what)
  for name, found in searches.items():
    chosen = select(study, found, workdir)
    progress(
      f'{name}: trial {chosen.winner + 1} wins, validation accuracy '
      f'{chosen.scores[chosen.winner]:.2f}%'
      + (f' (at an edge of {", ".join(chosen.on_edge)})' if chosen.on_edge else '')
    )
    if not trials_only:
      for seed in study.rerun_seeds:
        train(
          found.rerun(chosen.winner, seed),
          rerun_dir(workdir, name, seed),
          f'{name} winner, seed {seed}',
        )
  content = write_record(study, workdir, everything, progress, paste_into)
  progress(f'done in {time.perf_counter() - start:.0f} s')
  return content


# What a run's record is: what the report reads (checkpoints and summaries are left out).
RECORD_FILES = (runlog.CONFIG_FILE, runlog.METRICS_FILE)


def copy_records(
  study: Study,
  source: str,
  workdir: str,
  progress: Callable[[str], None] = print,
  overrides: Mapping[str, Any] | None = None,
) -> list[str]:
  """Copies into ``workdir`` the records of the study's finished runs in ``source`` (the
  ``--workdir`` of a search, under way or done): each search's ``trials.json`` and each
  finished or diverged run's ``RECORD_FILES``, a file at a time, atomically; a run not
  finished yet is left behind, and ``source`` is only read. Before copying anything,
  refuses draws other than the study's and a run of other settings than the study's
  (``runlog.ConfigMismatchError``), and a run without an intact ``config.json`` or that
  ``workdir`` holds with other records (``ValueError``). Returns the run directories
  copied anew, relative to ``workdir``."""
  if not os.path.isdir(os.path.join(source, TRIALS_DIR)):
    raise ValueError(f'{source} holds no tuning study ({TRIALS_DIR}/) to copy from')
  searches, runs = [], []
  for found in plan(study, overrides=overrides).values():
    expected = _trials_content(study, found)
    draws = [
      os.path.join(root, TRIALS_DIR, found.optimizer, TRIALS_FILE) for root in (source, workdir)
    ]
    if not os.path.exists(draws[0]):
      continue
    for path in draws:
      if os.path.exists(path) and runlog.read_json_object(path) != expected:
        raise runlog.ConfigMismatchError(
          f'{path} is damaged or holds other trials than study {study.name} draws: nothing copied'
        )
    searches.append(found)
    trials = [(trial_dir(source, found.optimizer, i), c) for i, c in enumerate(found.trials)]
    finished = [(d, c) for d, c in trials if sweep.is_complete(d, c)]
    if len(finished) == len(trials):  # the reruns' settings known
      winner = select(study, found, source).winner
      reruns = [
        (rerun_dir(source, found.optimizer, seed), found.rerun(winner, seed))
        for seed in study.rerun_seeds
      ]
      finished += [(d, c) for d, c in reruns if sweep.is_complete(d, c)]
    runs += finished
  new = []
  for run_dir, config in runs:
    name = os.path.relpath(run_dir, source)
    held = os.path.join(workdir, name)
    if not loop.check_config(run_dir, config):
      raise ValueError(f'{run_dir} has no intact {runlog.CONFIG_FILE}: nothing copied')
    if not os.path.exists(os.path.join(held, runlog.METRICS_FILE)):
      new.append(name)
    elif not (
      loop.check_config(held, config)
      and _read_bytes(os.path.join(held, runlog.METRICS_FILE))
      == _read_bytes(os.path.join(run_dir, runlog.METRICS_FILE))
    ):
      raise ValueError(f'{held} holds other records than {run_dir}; nothing copied')
  for found in searches:
    record_trials(study, found, workdir, progress)
  for name in new:
    os.makedirs(os.path.join(workdir, name), exist_ok=True)
    for file in RECORD_FILES:  # metrics.jsonl last: a run is held once it is
      content = _read_bytes(os.path.join(source, name, file))
      assert content is not None
      runlog.write_atomically(os.path.join(workdir, name, file), content)
  copied = ', '.join(new) or 'none new'
  progress(f'copied the records of {len(new)} finished run(s) from {source}: {copied}')
  return new


def _read_bytes(path: str) -> bytes | None:
  if not os.path.exists(path):
    return None
  with open(path, 'rb') as f:
    return f.read()


def report_study(
  study: Study,
  workdir: str,
  progress: Callable[[str], None] = print,
  paste_into: Sequence[str] = (),
  copy_from: str | None = None,
  overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
  """Writes ``tuning.json`` (returned) and the report of the study in ``workdir`` from its
  runs' records alone, training nothing: for a copy of the runs without checkpoints (the
  committed ones), or a search still under way. With ``copy_from`` (the workdir of a
  search), copies its finished runs' records into ``workdir`` first (``copy_records``, in
  one process alone; ``overrides`` as ``run_study``'s). Each optimizer's ``trials.json``
  present must hold the study's draws (``runlog.ConfigMismatchError`` if not). Pastes the
  report into each page of ``paste_into``."""
  if hosts.is_primary():  # the one that pastes
    report.check_pages(paste_into)
  check_workdir(workdir)
  if copy_from is not None:
    if jax.process_count() > 1:
      raise ValueError('copying the records of a search runs in one process: drop --copy_from')
    copy_records(study, copy_from, workdir, progress, overrides)
  if not os.path.isdir(os.path.join(workdir, TRIALS_DIR)):
    raise ValueError(f'workdir {workdir} holds no tuning study ({TRIALS_DIR}/)')
  searches = plan(study)
  for found in searches.values():
    if os.path.exists(os.path.join(workdir, TRIALS_DIR, found.optimizer, TRIALS_FILE)):
      record_trials(study, found, workdir, progress)
  return write_record(study, workdir, searches, progress, paste_into)
