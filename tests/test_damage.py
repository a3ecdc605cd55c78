"""Every file of a run directory damaged in turn, then the same command again.

Each file (``config.json``, ``metrics.jsonl``, ``sweep.json``, every checkpoint file, the
TensorBoard event file) is truncated to half, emptied, or has 3 bytes flipped (a fixed
seed); the run is then continued to epoch 4. Every case must end with the records of the
uninterrupted run (timings aside), or stop with a one-line ``RunError`` naming the run.
The suite damages three files at once and reruns once (tests/test_faults.py damages a
checkpoint); ``-m slow`` runs each kind of file (``table_files``) every way and, with
``PADAM_DAMAGE_TABLE=PATH``, writes the file x damage -> outcome table of docs/training.md
("Every file damaged").
"""

import collections
import os
import random
import re
import shutil
from typing import Any

import pytest

from padam_jax.rundir import faults, runlog
from padam_jax.training import config as config_lib
from padam_jax.training import loop, sweep

# A failed restore leaves tensorstore callbacks that later report 'Event loop is closed'.
pytestmark = [
  pytest.mark.e2e,
  pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning'),
]

DAMAGES = ('truncate', 'empty', 'flip')
SWEEP_MEMBER = 'seed=3'  # the tiny run's seed: a sweep of it alone is the tiny run


def damage(path: str, how: str, seed: int = 0) -> None:
  """Truncates ``path`` to half, cuts its last 20 bytes, empties it, or flips 3 of its
  bytes (``seed``)."""
  with open(path, 'rb') as f:
    content = bytearray(f.read())
  if how == 'truncate':
    content = content[: len(content) // 2]
  elif how == 'cut':  # a write interrupted near its end
    content = content[:-20]
  elif how == 'empty':
    content = bytearray()
  elif how == 'flip':
    rng = random.Random(f'{seed}:{os.path.basename(path)}')
    for position in rng.sample(range(len(content)), min(3, len(content))):
      content[position] ^= rng.randrange(1, 256)
  else:
    raise ValueError(f'unknown damage {how!r}; choose one of {", ".join(DAMAGES)}')
  with open(path, 'wb') as f:
    f.write(content)


def _without_timing(records):
  return [{k: v for k, v in r.items() if k != 'train_seconds'} for r in records]


def run_files(workdir: str) -> list[str]:
  """Every file of a finished run directory, relative to it, in a stable order."""
  found = []
  for root, _, names in os.walk(workdir):
    found += [os.path.relpath(os.path.join(root, n), workdir) for n in names]
  return sorted(found)


def table_files(workdir: str) -> list[str]:
  """The files the slow test damages: all but the older checkpoint's (read only when the
  newest fails), and of the data files named by hash, the largest of each directory."""
  newest = max(int(n) for n in os.listdir(os.path.join(workdir, 'checkpoints')) if n.isdigit())
  chosen: list[Any] = []
  largest: dict[Any, Any] = {}
  for path in run_files(workdir):
    parts = path.split(os.sep)
    if parts[0] == 'checkpoints' and parts[1] != str(newest):
      continue
    if len(parts) > 1 and parts[-2] == 'd':
      folder = os.path.dirname(path)
      largest[folder] = max(
        largest.get(folder, path), path, key=lambda p: os.path.getsize(os.path.join(workdir, p))
      )
    else:
      chosen.append(path)
  return [*chosen, *largest.values()]


@pytest.fixture(scope='module')
def reference(tiny_run, tmp_path_factory, tiny_dataset):
  """The tiny run continued to epoch 4 undamaged: the records every case must end with."""
  workdir = str(tmp_path_factory.mktemp('reference') / 'run')
  shutil.copytree(tiny_run.workdir, workdir)
  config = config_lib.TrainConfig(**{**tiny_run.settings, 'epochs': 4})
  return _without_timing(
    loop.train_and_evaluate(config, workdir, progress=lambda _: None, dataset=tiny_dataset)
  )


def _sweep_of_tiny_run(tiny_run, workdir: str) -> dict:
  """``workdir``: a sequential sweep of the tiny run's seed alone, holding the tiny run."""
  shutil.copytree(tiny_run.workdir, os.path.join(workdir, SWEEP_MEMBER))
  grid = {'seed': [tiny_run.settings['seed']]}
  members = sweep.expand(config_lib.TrainConfig(**tiny_run.settings), grid)
  write = sweep._write_sweep_file
  write(workdir, 'sequential', grid, members, print)
  return grid


def rerun_damaged(tiny_run, dataset, workdir: str, damages: dict[str, str]) -> tuple:
  """Damages files (``{path relative to a sweep of the tiny run in workdir: how}``),
  continues the sweep to epoch 4; returns ``(records or None, one-line error or None,
  progress lines)``."""
  grid = _sweep_of_tiny_run(tiny_run, workdir)
  for path, how in damages.items():
    target = path if path == sweep.SWEEP_FILE else os.path.join(SWEEP_MEMBER, path)
    damage(os.path.join(workdir, target), how)
  lines: list[str] = []
  base = config_lib.TrainConfig(**{**tiny_run.settings, 'epochs': 4})
  try:
    results = sweep.run_sweep(
      base,
      grid,
      workdir,
      mode='sequential',
      progress=lines.append,
      dataset=dataset,
      tensorboard=True,
    )
  except (faults.RunError, runlog.ConfigMismatchError) as error:
    return None, str(error), lines
  return _without_timing(results[SWEEP_MEMBER]), None, lines


def describe(records, error, lines, reference) -> str:
  """The outcome of one case, as docs/training.md's table says it; fails on a silent
  difference."""
  if error is not None:
    assert '\n' not in error and 'Traceback' not in error, error
    code = 2  # the launchers' status for these errors (experiments/exit_codes.py)
    return f'stops, status {code}: `{re.sub(r"/[^ ]*/(sweep|run)", "RUN", error)}`'
  assert records == reference, 'the records differ from the uninterrupted run\'s'
  text = '\n'.join(lines)
  resumed = re.findall(r'resumed from the checkpoint of epoch (\d+)', text)
  notes = [f'resumes from epoch {resumed[-1]}' if resumed else 'starts over']
  notes += [
    note
    for key, note in (
      ('is damaged; rewrote it', 'rewrites the file from the flags'),
      ('is torn or damaged', 'drops the damaged record and after'),
      ('holds epoch', 'drops the records out of sequence'),
      ('is unreadable', 'moves the checkpoint aside'),
      ('deleted the checkpoint', 'deletes the later checkpoint'),
    )
    if key in text
  ]
  return 'same records: ' + ', '.join(notes)


def test_damaged_run_files_are_recovered_to_the_same_records(
  tiny_run, tiny_dataset, reference, tmp_path
):
  """An empty config.json, a flipped sweep.json and the last record cut short by 20 bytes:
  both files are rewritten from the flags, epoch 3 is trained again, never left a gap."""
  workdir = str(tmp_path)
  run_dir = os.path.join(workdir, SWEEP_MEMBER)
  records, error, lines = rerun_damaged(
    tiny_run,
    tiny_dataset,
    workdir,
    {'config.json': 'empty', sweep.SWEEP_FILE: 'flip', runlog.METRICS_FILE: 'cut'},
  )
  assert error is None and records == reference
  said = '\n'.join(lines)
  assert f'{os.path.join(run_dir, runlog.CONFIG_FILE)} is damaged; rewrote it' in said
  assert f'{os.path.join(workdir, sweep.SWEEP_FILE)} is damaged; rewrote it' in said
  assert (
    f'{os.path.join(run_dir, runlog.METRICS_FILE)}: line 3 is torn or damaged; its '
    'intact records end at epoch 2'
  ) in said
  assert 'deleted the checkpoint of epoch 3' in said
  assert 'resumed from the checkpoint of epoch 2' in lines


@pytest.mark.slow
def test_every_file_damaged_every_way(tiny_run, tiny_dataset, reference, tmp_path):
  """The ``table_files`` x all damages; ``PADAM_DAMAGE_TABLE=PATH`` writes docs/training.md's
  table (about 7 s a case on 2 cores)."""
  files = [sweep.SWEEP_FILE, *table_files(tiny_run.workdir)]
  outcomes = collections.defaultdict(list)  # (kind of file, damage) -> outcomes
  for i, path in enumerate(files):
    for how in DAMAGES:
      case = str(tmp_path / f'{i}-{how}')
      outcome = describe(*rerun_damaged(tiny_run, tiny_dataset, case, {path: how}), reference)
      outcomes[_kind(path), how].append(outcome)
  table = ['| file | ' + ' | '.join(DAMAGES) + ' |', '|---|---|---|---|']
  for kind in dict.fromkeys(k for k, _ in outcomes):
    cells = [_summary(outcomes[kind, how]) for how in DAMAGES]
    table.append(f'| `{kind}` | ' + ' | '.join(cells) + ' |')
  if os.environ.get('PADAM_DAMAGE_TABLE'):
    with open(os.environ['PADAM_DAMAGE_TABLE'], 'w', encoding='utf-8') as f:
      f.write('\n'.join(table) + '\n')


def _kind(path: str) -> str:
  """A file's row of the table: data files of a checkpoint (named by hash) share one."""
  path = re.sub(r'/d/[0-9a-f]+$', '/d/*', path)
  return re.sub(r'tfevents\..*$', 'tfevents.*', path)


def _summary(outcomes: list[str]) -> str:
  """One cell: the outcome, or each distinct outcome with how many files it was."""
  counts = collections.Counter(outcomes)
  if len(counts) == 1:
    return outcomes[0] + (f' (all {len(outcomes)})' if len(outcomes) > 1 else '')
  return '; '.join(f'{n} files: {o}' for o, n in counts.items())
