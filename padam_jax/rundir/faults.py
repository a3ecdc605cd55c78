"""What stops a run on purpose: storage failures, divergence, and their one-line messages.

A ``RunError``'s text is the whole message a user needs (what failed, what is saved,
what to do), ``label`` the word it is reported under; a ``DivergedError`` is a run whose
loss stopped being finite or grew beyond ``DIVERGENCE_FACTOR`` times its initial value.
Which exit status each gets is the launchers' choice (``experiments.exit_codes``).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import sys
import types
from typing import Any

import numpy as np

# An epoch whose mean train loss exceeds this many times the run's initial one diverged.
DIVERGENCE_FACTOR = 1e3

# Failures of a disk or of permissions, as tensorstore (under Orbax) words them.
_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")
_KNOWN_ERRNOS = (
  errno.ENOSPC,
  errno.EDQUOT,
  errno.EFBIG,
  errno.EACCES,
  errno.EPERM,
  errno.EROFS,
  errno.EIO,
)
_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_PERMISSION_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)
# tensorstore appends the JSON spec of the store it failed on: long and not for people.
_SPEC_SUFFIX = re.compile(r"\s*\[[\w\[\]]+='.*$", re.DOTALL)
_STATUS_CODE = re.compile(r'^[A-Z][A-Z_]+$')


class RunError(Exception):
  """A run stopped for a reason its user can act on; ``str()`` is the one-line message."""

  label = 'error'


class StorageError(RunError):
  """The run directory could not be written (full disk, permissions)."""


class NoReadableCheckpointError(RunError):
  """Checkpoints exist but none can be restored."""


class RunDirBusyError(RunError):
  """Another process is training in the run directory (``padam_jax.rundir.lock``)."""


class DivergedError(RunError):
  """The loss stopped being finite or grew too large; the run is not trained further."""

  label = 'diverged'


def loss_limit(first_train_loss: Any, num_classes: int) -> Any:
  """The mean train loss above which an epoch has diverged, although finite.

  ``DIVERGENCE_FACTOR`` times the first epoch's train loss (one value, or one per
  member); before that epoch has ended (``None``), times ln(``num_classes``), the loss
  of a uniform guess.
  """
  if first_train_loss is None:
    return DIVERGENCE_FACTOR * math.log(num_classes)
  return DIVERGENCE_FACTOR * np.asarray(first_train_loss, dtype=np.float64)


def is_diverged(train_loss: Any, test_loss: Any, limit: Any = math.inf) -> Any:
  """Whether a loss is NaN or infinite or ``train_loss`` exceeds ``limit`` (``loss_limit``):
  a bool, or a bool array per member.

  Pass an epoch's train and test losses: the test loss is measured on the state
  about to be saved, the train loss before each update.
  """
  train = np.asarray(train_loss, dtype=np.float64)
  test = np.asarray(test_loss, dtype=np.float64)
  diverged = ~np.isfinite(train) | ~np.isfinite(test) | (train > limit)
  return bool(diverged) if diverged.ndim == 0 else diverged


def diverged_message(workdir: str, epoch: int, *, finite: bool = False, again: bool = False) -> str:
  """The one line for a run that diverged in ``epoch`` (``finite``: by ``loss_limit``;
  ``again``: found on a rerun)."""
  saved = f'the checkpoint of epoch {epoch - 1} is kept' if epoch > 1 else 'no checkpoint was saved'
  how = (
    f'train loss grew beyond {DIVERGENCE_FACTOR:g}x its initial value'
    if finite
    else 'loss became non-finite'
  )
  what = (
    f'{workdir} holds a run whose {how} in epoch {epoch}'
    if again
    else f'the {how} in epoch {epoch}'
  )
  return (
    f'{what}; {saved} and the run is not trained further: use a new --workdir '
    'with other settings (e.g. a smaller --lr)'
  )


def brief(error: BaseException, limit: int = 200) -> str:
  """A one-line reason for ``error`` (tensorstore's status and last clause, no spec)."""
  lines = _SPEC_SUFFIX.sub('', str(error)).strip().splitlines()
  text = lines[0] if lines else ''
  parts = text.split(': ')
  if len(parts) > 2 and _STATUS_CODE.match(parts[0]):
    text = f'{parts[0]}: {parts[-1]}'
  elif not text or not isinstance(error, (ValueError, OSError)):
    text = f'{type(error).__name__}: {text}' if text else type(error).__name__
  return text if len(text) <= limit else text[: limit - 3] + '...'


def as_os_error(error: BaseException, path: str) -> OSError | None:
  """``error`` as an ``OSError`` about ``path`` if it reports a disk or permission failure.

  Orbax raises tensorstore's failures as ``ValueError``s whose text holds the OS error
  (``... No space left on device [os_error_code='28']``); anything else gives None.
  """
  if isinstance(error, OSError):  # a failed write() names no file
    return error if error.filename else OSError(error.errno, error.strerror, path)
  text = str(error)
  match = _OS_ERROR_CODE.search(text)
  code: int | None
  if match:
    code = int(match.group(1))
  else:
    code = next((c for c in _KNOWN_ERRNOS if os.strerror(c) in text), None)
  if code is None:
    return None
  return OSError(code, os.strerror(code), path)


def is_permission_error(error: OSError) -> bool:
  """Whether ``error`` is about access rights or a read-only file system (not damage)."""
  return error.errno in _PERMISSION_ERRNOS


def storage_message(error: OSError, workdir: str, saved_epoch: int) -> str:
  """One line: what could not be written, which epoch is safe, and how to continue."""
  target = error.filename or f'in {workdir}'
  reason = error.strerror or brief(error)
  if error.errno == errno.EFBIG:
    remedy = 'lift the file-size limit (ulimit -f)'
  elif error.errno in _SPACE_ERRNOS:
    remedy = 'free some space'
  elif error.errno in _PERMISSION_ERRNOS:
    remedy = f'make {workdir} writable'
  else:
    remedy = 'fix the cause'
  saved = f'epoch {saved_epoch} is safely saved' if saved_epoch else 'no epoch is saved yet'
  return (
    f'could not write {target}: {reason}; {saved}: {remedy} and rerun the same command to continue'
  )


class StorageGuard:
  """Turns an ``OSError`` raised inside ``with`` into a ``StorageError`` with its message.

  Set ``saved_epoch`` whenever a checkpoint is complete, so the message can say
  what survives::

    with StorageGuard(workdir) as guard:
      ...
      checkpointer.save(epoch, state)
      guard.saved_epoch = epoch
  """

  def __init__(self, workdir: str, saved_epoch: int = 0):
    self.workdir = workdir
    self.saved_epoch = saved_epoch

  def __enter__(self) -> StorageGuard:
    return self

  def __exit__(
    self,
    kind: type[BaseException] | None,
    error: BaseException | None,
    traceback: types.TracebackType | None,
  ) -> None:
    if isinstance(error, OSError):
      raise StorageError(storage_message(error, self.workdir, self.saved_epoch)) from error


def _is_background_failure(record: logging.LogRecord) -> bool:
  from_orbax = f'{os.sep}orbax{os.sep}' in (record.pathname or '')
  return (from_orbax or record.name == 'asyncio') and record.levelno >= logging.ERROR


def quiet_background_failures(handler: logging.Handler) -> None:
  """Hides the echoes of a failed checkpoint write or read from background threads.

  When one fails, each Orbax worker logs the failure with a traceback and
  tensorstore's late callbacks report ``Event loop is closed`` as unraisable
  errors; the main thread raises the failure itself, which a ``RunError`` reports
  in one line. Drops those records at ``handler`` (e.g. absl's) and those errors.
  """
  handler.addFilter(lambda record: not _is_background_failure(record))
  previous = sys.unraisablehook

  def hook(unraisable: sys.UnraisableHookArgs) -> None:
    value = unraisable.exc_value
    if not (isinstance(value, RuntimeError) and str(value) == 'Event loop is closed'):
      previous(unraisable)

  sys.unraisablehook = hook
