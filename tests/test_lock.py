"""One process per run directory: the lock's message, its release, and a killed holder."""

import os
import signal
import subprocess
import sys

import pytest

from padam_jax.rundir import faults, lock

# Holds the lock of argv[1] until killed, after printing a line once it holds it.
_HOLDER = (
  'import sys, time\n'
  'from padam_jax.rundir import lock\n'
  'with lock.held([sys.argv[1]]):\n'
  '  print("held", flush=True)\n'
  '  time.sleep(600)\n'
)


def _busy(directory, pid):
  return (
    f'another process (pid {pid}) is training in {directory}; wait for it to end or use '
    'another --workdir'
  )


def test_a_second_lock_names_the_holder_and_the_first_is_released_on_exit(tmp_path):
  first, second = str(tmp_path / 'a'), str(tmp_path / 'b')
  with lock.held([second]):
    with pytest.raises(faults.RunDirBusyError) as busy:
      with lock.held([first, second]):
        pass
    assert str(busy.value) == _busy(second, os.getpid())
    with lock.held([first]):  # the failed attempt let go of the lock it had taken
      pass
  with lock.held([first, second]):
    with open(os.path.join(second, lock.LOCK_FILE)) as f:
      assert f.read() == f'{os.getpid()}\n'


def test_the_lock_of_a_killed_process_is_released(tmp_path):
  directory = str(tmp_path / 'run')
  holder = subprocess.Popen(
    [sys.executable, '-c', _HOLDER, directory], stdout=subprocess.PIPE, text=True
  )
  try:
    assert holder.stdout.readline() == 'held\n'
    with pytest.raises(faults.RunDirBusyError, match=f'pid {holder.pid}'):
      with lock.held([directory]):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
  with lock.held([directory]):
    pass
