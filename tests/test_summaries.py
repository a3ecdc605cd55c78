"""TensorBoard summaries: the same numbers as metrics.jsonl, and never a failed run."""

import logging
import sys

import numpy as np
from conftest import assert_tensorboard_matches, read_tensorboard

from padam_jax.rundir import summaries


def test_summaries_mirror_metrics_jsonl_and_config(tiny_run):
  assert_tensorboard_matches(tiny_run.workdir, tiny_run.records)


def test_epoch_scalars_leave_out_null_non_finite_and_diverged():
  record = {
    'epoch': 2,
    'step': 6,
    'train_loss': 0.5,
    'train_accuracy': 0.75,
    'test_loss': float('nan'),
    'test_error': 0.25,
    'learning_rate': 0.1,
    'partial': None,
    'train_seconds': 1.5,
  }
  assert summaries.epoch_scalars(record) == {
    'epoch/train_loss': 0.5,
    'epoch/train_accuracy': 0.75,
    'epoch/test_error': 0.25,
    'epoch/learning_rate': 0.1,
    'epoch/train_seconds': 1.5,
  }
  assert summaries.epoch_scalars({**record, 'diverged': True}) == {}


def test_a_failing_writer_warns_once_and_goes_quiet(tmp_path, caplog):
  (tmp_path / summaries.LOGDIR).write_text('a file where the folder would go')
  with caplog.at_level(logging.WARNING), summaries.RunSummaries(str(tmp_path)) as board:
    board.start({'seed': 0}, first_step=1)
    board.train_loss(1, np.float32(2.0))
    board.epoch({'step': 1, 'train_loss': 2.0})
  assert len(caplog.records) == 1 and 'metrics.jsonl is unaffected' in caplog.text


def test_without_tensorboardx_a_run_warns_once_and_writes_no_events(tmp_path, caplog, monkeypatch):
  """As on an install without tensorboardX: summaries turn themselves off, nothing fails."""
  monkeypatch.setitem(sys.modules, 'tensorboardX', None)  # `import tensorboardX` fails
  summaries._tensorboardx.cache_clear()
  try:
    with caplog.at_level(logging.WARNING), summaries.RunSummaries(str(tmp_path)) as board:
      board.start({'seed': 0}, first_step=1)
      board.train_loss(1, np.float32(2.0))
      board.epoch({'step': 1, 'train_loss': 2.0})
  finally:
    summaries._tensorboardx.cache_clear()
  assert len(caplog.records) == 1 and 'tensorboardX' in caplog.text
  assert not list((tmp_path / summaries.LOGDIR).glob('*tfevents*'))


def test_disabled_writer_writes_nothing(tmp_path):
  with summaries.RunSummaries(str(tmp_path), enabled=False) as board:
    board.start({'seed': 0}, first_step=1)
    board.train_loss(1, 2.0)
  assert not list(tmp_path.iterdir())


def test_a_restart_supersedes_the_steps_it_trains_again(tmp_path):
  """A run stopped after step 9 and resumed from step 4: steps >= 4 of the first attempt
  are dropped, though the second attempt writes only steps 4 and 5."""
  for first, last in ((1, 9), (4, 5)):
    with summaries.RunSummaries(str(tmp_path)) as board:
      board.start({'seed': 0}, first_step=first)
      for step in range(first, last + 1):
        board.train_loss(step, 10.0 * first + step)
  scalars, _ = read_tensorboard(str(tmp_path))
  assert scalars[summaries.PROGRESS_TAG] == {1: 11.0, 2: 12.0, 3: 13.0, 4: 44.0, 5: 45.0}
