"""TensorBoard summaries of a run, written beside its ``metrics.jsonl``.

``metrics.jsonl`` stays the record that plots and tables read; ``WORKDIR/tensorboard/``
shows the same numbers in TensorBoard (``tensorboard --logdir runs/``):

* ``progress/train_loss``: the epoch's mean train loss so far, at each progress report;
* ``epoch/<key>``: each number of an epoch's record (``EPOCH_KEYS``; those it lacks, such
  as the validation metrics of a run without a validation split, are left out), at the
  epoch's last step;
* the configuration, as hyperparameters (the HPARAMS tab) and as JSON text (``config``).

Events are built with tensorboardX's protos and summary functions (no TensorFlow) and
written by the training thread itself, flushed at once: there is no background writer
that a full disk could stall. The first failure is logged as a warning and turns the
writer into a no-op, so summaries never stop a run. Each (re)start opens a new event
file that begins with a ``SessionLog.START`` at the first step about to be trained (what
tensorboardX's ``purge_step`` writes): TensorBoard then drops what an interrupted
attempt wrote from that step on, as ``metrics.jsonl`` drops the records of epochs after
the restored checkpoint. Only process 0 writes.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import socket
import sys
import time
import types
from collections.abc import Callable
from typing import Any

from padam_jax.distributed import hosts

logger = logging.getLogger(__name__)

LOGDIR = 'tensorboard'
PROGRESS_TAG = 'progress/train_loss'
CONFIG_TAG = 'config'
EPOCH_KEYS = (
  'train_loss',
  'train_accuracy',
  'test_loss',
  'test_error',
  'validation_loss',  # runs with a validation split only
  'validation_error',
  'learning_rate',
  'partial',
  'train_seconds',
)


@functools.cache
def _tensorboardx() -> tuple[Callable[[str], Any], types.ModuleType, types.ModuleType]:
  """tensorboardX's summary functions and protos, imported without PyTorch.

  Its package imports torch, when installed, for type hints only (seconds of start-up,
  measured: docs/measurements.md#tensorboardx-import);
  a ``None`` in ``sys.modules`` makes that import fail fast, as if torch were absent.
  """
  blocked = 'torch' not in sys.modules
  if blocked:
    sys.modules['torch'] = None  # type: ignore[assignment]
  try:
    import tensorboardX
    from tensorboardX import summary
    from tensorboardX.proto import event_pb2
  finally:
    if blocked:
      del sys.modules['torch']
  return tensorboardX.RecordWriter, summary, event_pb2


def _finite(value: Any) -> float | None:
  """``value`` as a float, or None when it is null or not finite."""
  if value is None:
    return None
  value = float(value)
  return value if math.isfinite(value) else None


def epoch_scalars(record: dict[str, Any]) -> dict[str, float]:
  """The ``epoch/<key>`` scalars of a metrics record.

  Null and non-finite values are left out, and so is a record marked diverged (its
  metrics describe no trained state; ``metrics.jsonl`` says what happened).
  """
  if record.get('diverged'):
    return {}
  scalars = {f'epoch/{key}': _finite(record.get(key)) for key in EPOCH_KEYS}
  return {tag: value for tag, value in scalars.items() if value is not None}


def hparams(config: dict[str, Any]) -> dict[str, Any]:
  """The fields of a configuration that are set (None: unused or defaulted)."""
  return {key: value for key, value in config.items() if value is not None}


class RunSummaries:
  """The TensorBoard event writer of one run directory.

  A no-op when ``enabled`` is false, before ``start`` and after any failure; a context
  manager that closes its file.
  """

  def __init__(self, workdir: str, enabled: bool = True):
    self.logdir = os.path.join(workdir, LOGDIR)
    self._enabled = enabled
    self._file: Any = None  # tensorboardX's RecordWriter, imported when started

  def __enter__(self) -> RunSummaries:
    return self

  def __exit__(self, *exc_info: object) -> None:
    self.close()

  def start(self, config: dict[str, Any], first_step: int) -> None:
    """Opens a new event file for training from ``first_step`` (1-based) on; records
    ``config``. Whatever an earlier file holds from ``first_step`` on is superseded."""

    def start() -> None:
      if not hosts.is_primary():
        self._enabled = False
        return
      record_writer, summary, event_pb2 = _tensorboardx()
      os.makedirs(self.logdir, exist_ok=True)
      ns = time.time_ns()  # unique, and in order of creation (TensorBoard reads by name)
      name = f'events.out.tfevents.{ns // 10**9}.{socket.gethostname()}.{ns % 10**9:09d}'
      self._file = record_writer(os.path.join(self.logdir, name))
      self._write(event_pb2.Event(file_version='brain.Event:2'))
      self._write(
        event_pb2.Event(
          step=first_step, session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)
        )
      )
      text = json.dumps(config, indent=2, sort_keys=True).replace('\n', '\n    ')
      _, start_info, _ = summary.hparams(hparams(config), {})
      self._write_summaries(0, [summary.text(CONFIG_TAG, '    ' + text), start_info])

    self._guarded(start)

  def train_loss(self, step: int, loss: Any) -> None:
    """The running train loss at global ``step`` (a progress report)."""
    self.scalars(step, {PROGRESS_TAG: loss})

  def epoch(self, record: dict[str, Any]) -> None:
    """The numbers of an epoch's metrics record, at its ``step``."""
    self.scalars(record['step'], epoch_scalars(record))

  def scalars(self, step: int, values: dict[str, Any]) -> None:
    """Scalars at global ``step``; null and non-finite values are left out."""
    if self._file is None:  # disabled, not started or failed
      return

    def write() -> None:
      _, summary, _ = _tensorboardx()
      finite = {tag: _finite(value) for tag, value in values.items()}
      self._write_summaries(
        step, [summary.scalar(tag, value) for tag, value in finite.items() if value is not None]
      )

    self._guarded(write)

  def close(self) -> None:
    if self._file is not None:
      file, self._file = self._file, None
      self._guarded(file.close)

  # --- writing ------------------------------------------------------------------------

  def _write(self, event: Any) -> None:
    self._file.write(event.SerializeToString())

  def _write_summaries(self, step: int, summaries: list) -> None:
    _, _, event_pb2 = _tensorboardx()
    wall_time = time.time()
    for summary in summaries:
      self._write(event_pb2.Event(wall_time=wall_time, step=step, summary=summary))
    self._file.flush()

  def _guarded(self, action: Callable[[], None]) -> None:
    """Runs ``action`` if enabled; a failure is reported once and disables the writer."""
    if not self._enabled:
      return
    try:
      action()
    except Exception as error:  # never fail a run
      self._enabled = False
      logger.warning(
        'TensorBoard summaries in %s stopped (metrics.jsonl is unaffected): %s', self.logdir, error
      )
      if self._file is not None:
        file, self._file = self._file, None
        try:
          file.close()
        except Exception:
          pass
