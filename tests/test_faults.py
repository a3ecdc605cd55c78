"""Damage a run survives: unreadable checkpoints, failed writes, non-finite losses."""

import dataclasses
import errno
import glob
import json
import logging
import os
import shutil
import sys
import types

import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import assert_tensorboard_matches

from padam_jax import data
from padam_jax.rundir import checkpoint, faults, runlog
from padam_jax.training import config as config_lib
from padam_jax.training import loop

# A failed restore leaves tensorstore callbacks that later report 'Event loop is closed'.
pytestmark = pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')

# What tensorstore (under Orbax) raised when a 4 MB tmpfs filled up during a save.
ENOSPC_TEXT = (
  'RESOURCE_EXHAUSTED: Error writing "opt_state.1.nu_max.stage4_block1.conv1.kernel/0.0.1.0"'
  ' in OCDBT database at local file "/w/checkpoints/2.orbax-checkpoint-tmp/default/": '
  'Failed to write 418 bytes to file 14: No space left on device [os_error_code=\'28\']'
)
# ... and when it read a data file overwritten with 100 bytes (spec cut short).
OUT_OF_RANGE_TEXT = (
  'OUT_OF_RANGE: Error opening "cast" driver: Error reading "params.dense.bias/.zarray" '
  'in OCDBT database at local file "/w/checkpoints/2/default/": Requested byte range '
  '[0, 36660) is not valid for value of size 100 [tensorstore_spec[1]=\'{"base": {}}\']'
)


def _without_timing(records):
  return [{k: v for k, v in r.items() if k != 'train_seconds'} for r in records]


def _saved(workdir):
  return sorted(os.listdir(os.path.join(workdir, 'checkpoints')))


@pytest.fixture(scope='module')
def digits():
  return data.load_dataset('digits')


@pytest.fixture
def run(tiny_run, tmp_path):
  """A copy of the tiny 3-epoch run, and its configuration with any overrides."""
  workdir = str(tmp_path / 'run')
  shutil.copytree(tiny_run.workdir, workdir)
  return workdir, lambda **kw: config_lib.TrainConfig(**{**tiny_run.settings, **kw})


# --- an unreadable checkpoint ---------------------------------------------------


@pytest.mark.e2e
def test_damaged_latest_checkpoint_is_moved_aside_and_the_run_goes_on(
  run, tiny_run, digits, damage_checkpoint
):
  workdir, config = run
  damage_checkpoint(workdir, 3)
  lines = []
  records = loop.train_and_evaluate(
    config(), workdir, progress=lines.append, dataset=digits, tensorboard=True
  )
  unreadable = [line for line in lines if 'unreadable' in line]
  assert len(unreadable) == 1
  assert unreadable[0].startswith(
    'the checkpoint of epoch 3 is unreadable (OUT_OF_RANGE: Requested byte range'
  )
  assert 'resumed from the checkpoint of epoch 2' in lines
  moved = glob.glob(os.path.join(workdir, 'checkpoints', 'damaged', '3-*'))
  assert len(moved) == 1 and os.path.isdir(os.path.join(moved[0], 'default'))
  assert _saved(workdir) == ['2', '3', 'damaged']
  # epoch 3 was dropped from metrics.jsonl and redone: the same numbers again
  assert _without_timing(records) == _without_timing(tiny_run.records)
  # and TensorBoard shows the redone epoch's points instead of the first attempt's
  assert_tensorboard_matches(workdir, records)


def test_no_readable_checkpoint_stops_and_moves_nothing(run, digits, damage_checkpoint):
  workdir, config = run
  damage_checkpoint(workdir, 2)
  damage_checkpoint(workdir, 3)
  with pytest.raises(
    faults.NoReadableCheckpointError,
    match=r'^no checkpoint in .*run/checkpoints is readable \(epochs 3, 2; '
    r'epoch 3: OUT_OF_RANGE: .*\): restore them from a backup, or start over '
    'with a new --workdir',
  ):
    loop.train_and_evaluate(config(epochs=4), workdir, dataset=digits)
  assert _saved(workdir) == ['2', '3']
  assert [r['epoch'] for r in runlog.read_metrics(workdir)] == [1, 2, 3]


# --- failed writes ------------------------------------------------------------------


def test_full_disk_names_the_saved_epoch(run, digits, monkeypatch):
  workdir, config = run

  def full_disk_save(manager, step, *args, **kwargs):
    os.makedirs(os.path.join(manager.directory, f'{step}.orbax-checkpoint-tmp', 'default'))
    raise ValueError(ENOSPC_TEXT)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', full_disk_save)
  with pytest.raises(faults.StorageError) as caught:
    loop.train_and_evaluate(config(epochs=4), workdir, dataset=digits)
  assert str(caught.value) == (
    f'could not write {workdir}/checkpoints/4: No space left on device; epoch 3 is safely '
    'saved: free some space and rerun the same command to continue'
  )
  # the launcher test reruns after such a failure
  assert len(checkpoint.unfinished_writes(workdir)) == 1
  assert _saved(workdir)[:2] == ['2', '3']


def test_workdir_that_cannot_be_created(tmp_path, tiny_run, digits):
  (tmp_path / 'file').write_text('')
  workdir = str(tmp_path / 'file' / 'run')
  with pytest.raises(
    faults.StorageError,
    match=f'^could not write {workdir}: Not a directory; no epoch is saved '
    'yet: fix the cause and rerun the same command to continue$',
  ):
    loop.train_and_evaluate(config_lib.TrainConfig(**tiny_run.settings), workdir, dataset=digits)


@pytest.mark.parametrize(
  'code, remedy',
  [
    (errno.ENOSPC, 'free some space'),
    (errno.EDQUOT, 'free some space'),
    (errno.EFBIG, 'lift the file-size limit (ulimit -f)'),
    (errno.EACCES, 'make /w writable'),
    (errno.EROFS, 'make /w writable'),
    (errno.EIO, 'fix the cause'),
  ],
)
def test_storage_message_says_what_to_do(code, remedy):
  error = OSError(code, os.strerror(code), '/w/metrics.jsonl')
  message = faults.storage_message(error, '/w', saved_epoch=4)
  assert message == (
    f'could not write /w/metrics.jsonl: {os.strerror(code)}; epoch 4 is '
    f'safely saved: {remedy} and rerun the same command to continue'
  )


def test_orbax_errors_become_os_errors():
  full = faults.as_os_error(ValueError(ENOSPC_TEXT), '/w/checkpoints/2')
  assert (full.errno, full.filename) == (errno.ENOSPC, '/w/checkpoints/2')
  denied = faults.as_os_error(ValueError('PERMISSION_DENIED: ... Permission denied'), '/w')
  assert isinstance(denied, PermissionError) and faults.is_permission_error(denied)
  assert faults.as_os_error(ValueError(OUT_OF_RANGE_TEXT), '/w') is None
  plain = FileNotFoundError(errno.ENOENT, 'gone', '/w')
  assert faults.as_os_error(plain, '/x') is plain
  unnamed = faults.as_os_error(OSError(errno.ENOSPC, 'full'), '/w/checkpoints/2')
  assert (unnamed.errno, unnamed.filename) == (errno.ENOSPC, '/w/checkpoints/2')
  assert faults.storage_message(OSError(errno.ENOSPC, 'full'), '/w', 0).startswith(
    'could not write in /w: full; no epoch is saved yet'
  )


def test_brief_keeps_the_status_and_the_last_clause():
  assert faults.brief(ValueError(OUT_OF_RANGE_TEXT)) == (
    'OUT_OF_RANGE: Requested byte range [0, 36660) is not valid for value of size 100'
  )
  assert faults.brief(KeyError('params')) == "KeyError: 'params'"
  assert len(faults.brief(ValueError('x' * 500))) == 200


def test_background_failures_are_hidden():
  handler = logging.Handler()
  previous = sys.unraisablehook
  seen = []
  sys.unraisablehook = seen.append
  try:
    faults.quiet_background_failures(handler)
    orbax = logging.LogRecord(
      'absl', logging.ERROR, '/x/orbax/checkpoint/future.py', 1, 'failed', None, None
    )
    ours = logging.LogRecord(
      'absl', logging.ERROR, '/x/padam_jax/training/loop.py', 1, 'failed', None, None
    )
    assert [handler.filter(orbax), handler.filter(ours)] == [False, True]
    for error in (RuntimeError('Event loop is closed'), RuntimeError('other')):
      sys.unraisablehook(types.SimpleNamespace(exc_value=error))
    assert [str(u.exc_value) for u in seen] == ['other']
  finally:
    sys.unraisablehook = previous


# --- divergence ----------------------------------------------------------------------


def test_non_finite_loss_marks_the_epoch_saves_nothing_and_stays_stopped(run, digits):
  """A label with no class gives a NaN loss (the same compiled programs as good data)."""
  workdir, config = run
  labels = digits.train_labels.copy()
  labels[0] = digits.num_classes
  poisoned = dataclasses.replace(digits, train_labels=labels)
  with pytest.raises(faults.DivergedError) as caught:
    loop.train_and_evaluate(config(epochs=5), workdir, dataset=poisoned)
  assert str(caught.value) == (
    'the loss became non-finite in epoch 4; the checkpoint of epoch 3 is kept and the run '
    'is not trained further: use a new --workdir with other settings (e.g. a smaller --lr)'
  )
  records = runlog.read_metrics(workdir)
  assert [r['epoch'] for r in records] == [1, 2, 3, 4]
  assert records[3]['diverged'] is True and records[3]['train_loss'] is None
  assert not any('diverged' in r for r in records[:3])
  assert _saved(workdir) == ['2', '3']
  # a rerun, even with good data, reports it again and trains nothing
  with pytest.raises(
    faults.DivergedError,
    match=f'^{workdir} holds a run whose loss became '
    'non-finite in epoch 4; the checkpoint of epoch 3 is kept',
  ):
    loop.train_and_evaluate(config(epochs=5), workdir, dataset=digits)
  assert len(runlog.read_metrics(workdir)) == 4


def test_is_diverged_per_value_and_per_member():
  assert faults.is_diverged(2.3, 2.1) is False
  assert faults.is_diverged(2.3, float('nan')) is True
  assert faults.is_diverged(float('inf'), 2.0) is True
  np.testing.assert_array_equal(
    faults.is_diverged(np.array([2.3, np.nan, 1e30]), np.array([2.0, 2.0, np.inf])),
    [False, True, True],
  )


def test_finite_divergence_is_a_multiple_of_the_initial_loss():
  first_epoch = faults.loss_limit(None, num_classes=10)
  assert first_epoch == pytest.approx(1e3 * np.log(10))
  assert faults.is_diverged(first_epoch * 1.01, 2.0, first_epoch) is True
  assert faults.is_diverged(first_epoch * 0.99, 2.0, first_epoch) is False
  limits = faults.loss_limit([2.0, None, 0.5], num_classes=10)
  np.testing.assert_array_equal(
    faults.is_diverged(np.array([1999.0, 5e3, 501.0]), np.ones(3), limits), [False, False, True]
  )


def test_non_finite_values_are_written_as_null_and_found(tmp_path):
  workdir = str(tmp_path)
  runlog.append_metrics(workdir, {'epoch': 1, 'train_loss': 2.3})
  assert runlog.diverged_record(workdir) is None
  runlog.append_metrics(
    workdir, {'epoch': 2, 'train_loss': float('nan'), 'test_loss': float('-inf'), 'diverged': True}
  )
  with open(tmp_path / runlog.METRICS_FILE) as f:
    line = json.loads(f.read().splitlines()[1])
  assert line == {
    'diverged': True,
    'epoch': 2,
    'test_loss': None,
    'train_loss': None,
    'crc32': line['crc32'],
  }
  assert runlog.diverged_record(workdir)['epoch'] == 2


# --- --train_size / --test_size ----------------------------------------------------------


def test_subset_of_a_dataset(digits):
  subset = digits.subset(100)
  assert subset.num_train == 100 and subset.num_test == digits.num_test
  assert (subset.mean, subset.std) == (digits.mean, digits.std)
  assert digits.subset(test_size=10).num_test == 10
  with pytest.raises(ValueError, match='train_size'):
    digits.subset(digits.num_train + 1)
  with pytest.raises(ValueError, match='train_size'):
    config_lib.resolve(config_lib.TrainConfig(train_size=0))


# --- records and checkpoints agree ------------------------------------------------------


def test_a_changed_number_is_found_by_its_checksum(tmp_path):
  workdir = str(tmp_path)
  for epoch in (1, 2, 3):
    runlog.append_metrics(workdir, {'epoch': epoch, 'train_loss': 2.5})
  path = tmp_path / runlog.METRICS_FILE
  path.write_text(path.read_text().replace('2.5', '2.7', 2))  # epochs 1 and 2
  assert runlog.check_metrics(workdir) == ([], 'line 1 is torn or damaged')


def test_finite_but_huge_loss_diverges(run, digits, monkeypatch):
  """With the limit at 0.5x the first epoch's loss, epoch 4's finite loss exceeds it."""
  workdir, config = run
  monkeypatch.setattr(faults, 'DIVERGENCE_FACTOR', 0.5)
  with pytest.raises(
    faults.DivergedError,
    match='^the train loss grew beyond 0.5x its '
    'initial value in epoch 4; the checkpoint of epoch 3 is kept',
  ):
    loop.train_and_evaluate(config(epochs=5), workdir, dataset=digits)
  last = runlog.read_metrics(workdir)[-1]
  assert last['diverged'] is True and np.isfinite(last['train_loss'])
  assert _saved(workdir) == ['2', '3']
