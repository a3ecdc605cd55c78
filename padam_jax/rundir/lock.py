"""One process per run directory: an OS file lock held while training in it.

Two processes that train the same run (parallel ``--sweep`` processes given overlapping
sweeps, or a second start of the same command) would write the same checkpoints and
records. While it trains, a process holds ``fcntl.flock`` on ``DIR/.lock`` (which holds
its pid) of every directory it writes; the kernel releases the lock when the process
ends, however it ends, so the next start resumes a killed process's run. The lock file
stays: removing it would let a third process lock a new file while the second holds the
old one.

In a multi-host run only the primary process writes run files, so only it locks; the
processes then decide together (``hosts.worst``), and all stop when it could not lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence

from padam_jax.distributed import hosts
from padam_jax.rundir import faults

LOCK_FILE = '.lock'


def busy_message(directory: str, pid: str) -> str:
  """The one line for a ``directory`` that another process (``pid``, '' if unknown) holds."""
  who = f'another process (pid {pid})' if pid else 'another process'
  return f'{who} is training in {directory}; wait for it to end or use another --workdir'


def _holder(fd: int) -> str:
  """The pid the holder wrote into the lock file ('' before it has written it)."""
  os.lseek(fd, 0, os.SEEK_SET)
  return os.read(fd, 32).decode('ascii', 'replace').strip()


def _lock(directory: str) -> int:
  """An open descriptor of ``directory``'s lock file, locked and holding this pid."""
  os.makedirs(directory, exist_ok=True)
  fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    pid = _holder(fd)
    os.close(fd)
    raise faults.RunDirBusyError(busy_message(directory, pid)) from None
  except BaseException:
    os.close(fd)
    raise
  os.ftruncate(fd, 0)
  os.pwrite(fd, f'{os.getpid()}\n'.encode('ascii'), 0)
  return fd


@contextlib.contextmanager
def held(directories: Sequence[str]) -> Iterator[None]:
  """Holds the lock of each of ``directories`` (created if missing) inside ``with``.

  Raises ``faults.RunDirBusyError`` (nothing held) when another process holds one of them.
  """
  fds: list[int] = []
  error: faults.RunDirBusyError | None = None
  try:
    if hosts.is_primary():
      try:
        for directory in dict.fromkeys(directories):
          fds.append(_lock(directory))
      except faults.RunDirBusyError as busy:
        error = busy
    if hosts.worst(int(error is not None)):
      raise error or faults.RunDirBusyError(
        busy_message(directories[0], '') + ' (found by process 0)'
      )
    yield
  finally:
    for fd in fds:
      os.close(fd)  # closing the last descriptor of the file releases its lock
