"""Per-epoch checkpoints of the train state with Orbax (synchronous, atomic, with fallback)."""

from __future__ import annotations

import errno
import glob
import logging
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import jax

from padam_jax.distributed import hosts
from padam_jax.rundir import faults

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = 'checkpoints'
# Where unreadable checkpoints are moved (Orbax ignores names that are not epochs).
DAMAGED_DIR = 'damaged'
_UNFINISHED = '*.orbax-checkpoint-tmp*'


def unfinished_writes(workdir: str) -> list[str]:
  """Orbax's temporary directories under ``workdir/checkpoints``: writes that never ended."""
  return sorted(glob.glob(os.path.join(workdir, CHECKPOINTS_DIR, _UNFINISHED)))


# Outcomes of restoring one checkpoint, in increasing severity (see ``restore_latest``).
_RESTORED, _UNREADABLE, _NOT_PERMITTED = 0, 1, 2


class Checkpointer:
  """Saves and restores the train state of each epoch under ``workdir/checkpoints``.

  In a multi-host run every process saves and restores together (Orbax's
  multi-process support) and the primary one makes the repairs.
  Keeps the newest ``max_to_keep`` epochs; Orbax writes each into a temporary
  directory and renames it when complete, so a kill never leaves a torn one. Two
  are enough for one damaged checkpoint to have a readable one beside it.
  ``report`` receives one line per repair (an unfinished write removed, a damaged
  checkpoint moved aside).
  """

  def __init__(
    self, workdir: str, max_to_keep: int = 2, report: Callable[[str], None] = logger.warning
  ):
    import orbax.checkpoint as ocp

    self._ocp = ocp
    self._report = report
    self.directory = os.path.abspath(os.path.join(workdir, CHECKPOINTS_DIR))
    self._options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
    )
    self._remove_unfinished()
    self._manager = self._open()

  def _open(self) -> Any:
    return self._ocp.CheckpointManager(self.directory, options=self._options)

  def _reopen(self) -> None:
    """A fresh manager: one that failed to restore a step may fail on every other."""
    self._manager.close()
    self._manager = self._open()

  def _remove_unfinished(self) -> None:
    """Deletes temporary directories of writes that never finished (killed, disk full)."""
    if hosts.is_primary():
      for path in unfinished_writes(os.path.dirname(self.directory)):
        shutil.rmtree(path)
        self._report(f'removed {path}, an unfinished checkpoint write')
    hosts.barrier('checkpoints: unfinished writes removed')

  def latest_epoch(self) -> int | None:
    """The last saved epoch (1-based), or None."""
    return self._manager.latest_step()

  def save(self, epoch: int, state: Any) -> None:
    """Saves ``state`` as ``epoch``; a full disk or a permission problem is an OSError."""
    try:
      self._manager.save(epoch, args=self._ocp.args.StandardSave(state))
      self._manager.wait_until_finished()
    except Exception as error:
      os_error = faults.as_os_error(error, os.path.join(self.directory, str(epoch)))
      if os_error is None or os_error is error:
        raise
      raise os_error from error

  def restore(self, epoch: int, like: Any) -> Any:
    """The state saved at ``epoch``, with the shapes, dtypes and shardings of ``like``."""
    abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like
    )
    return self._manager.restore(epoch, args=self._ocp.args.StandardRestore(abstract))

  def restore_latest(self, like: Any, up_to: int | None = None) -> tuple[int, Any]:
    """The newest readable checkpoint as ``(epoch, state)``; ``(0, like)`` if there is none.

    Only epochs up to ``up_to`` (any if None) are restored; later checkpoints are
    deleted (reported in one line), as their epochs are trained again. Unreadable newer
    checkpoints are moved to ``checkpoints/damaged/`` (reported in one line each).
    When checkpoints exist but none is readable, nothing is moved and
    ``NoReadableCheckpointError`` is raised.
    """
    steps = sorted(self._manager.all_steps(), reverse=True)
    later = [s for s in steps if up_to is not None and s > up_to]
    failures = []
    for epoch in steps[len(later) :]:
      path = os.path.join(self.directory, str(epoch))
      outcome, reason = _RESTORED, ''
      denied: OSError | None = None  # this process may not read the checkpoint
      state = like  # the restored state once this process has read it
      try:
        state = self.restore(epoch, like)
      except Exception as error:
        os_error = faults.as_os_error(error, path)
        if os_error is not None and faults.is_permission_error(os_error):
          outcome, denied = _NOT_PERMITTED, os_error
        else:
          outcome, reason = _UNREADABLE, faults.brief(error)
      # Every process takes the worst outcome of all, so that all go the same way.
      outcome = hosts.worst(outcome)
      if outcome == _NOT_PERMITTED:  # the checkpoint may be fine: not ours to move
        raise (
          denied
          if denied is not None
          else PermissionError(errno.EACCES, 'another process of this run may not read it', path)
        )
      if outcome == _UNREADABLE:
        failures.append((epoch, reason or 'unreadable by another process of this run'))
        self._reopen()
        continue
      if failures:
        self._move_damaged_aside(failures)
      self._delete(later)
      return epoch, state
    if failures:
      epochs = ', '.join(str(e) for e, _ in failures)
      raise faults.NoReadableCheckpointError(
        f'no checkpoint in {self.directory} is readable (epochs {epochs}; epoch '
        f'{failures[0][0]}: {failures[0][1]}): restore them from a backup, or start '
        f'over with a new --workdir (or after deleting {self.directory})'
      )
    self._delete(later)
    return 0, like

  def _delete(self, epochs: list[int]) -> None:
    """Deletes the checkpoints of ``epochs`` (newer than the records: trained again)."""
    for epoch in sorted(epochs):
      self._manager.delete(epoch)
      self._report(
        f'deleted the checkpoint of epoch {epoch}: a record of an epoch up to it '
        'is missing or damaged, so that epoch is trained again'
      )

  def _move_damaged_aside(self, failures: list[tuple[int, str]]) -> None:
    """Moves the unreadable checkpoints to ``damaged/`` (the primary process does it)."""
    hosts.barrier('checkpoints: restored')  # no process reads the damaged ones any more
    if hosts.is_primary():
      for epoch, reason in failures:
        moved = self._move_aside(epoch)
        self._report(
          f'the checkpoint of epoch {epoch} is unreadable ({reason}); moved it to {moved}'
        )
    hosts.barrier('checkpoints: damaged moved aside')
    self._reopen()

  def _move_aside(self, epoch: int) -> str:
    stamp = time.strftime('%Y%m%d-%H%M%S')
    target = os.path.join(self.directory, DAMAGED_DIR, f'{epoch}-{stamp}')
    suffix = 0
    while os.path.exists(target):
      suffix += 1
      target = os.path.join(self.directory, DAMAGED_DIR, f'{epoch}-{stamp}-{suffix}')
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.rename(os.path.join(self.directory, str(epoch)), target)
    return target

  def close(self) -> None:
    self._manager.close()
