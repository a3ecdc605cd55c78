"""What the launchers share: one host device per core, --workdir, errors, quiet logging.

Importing this module (before anything imports jax) exposes one XLA host device per
CPU core, so that on CPU both cores share each batch.
"""

import os
import sys

_DEVICES = '--xla_force_host_platform_device_count'
if _DEVICES not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (f"{os.environ.get('XLA_FLAGS', '')} "
                             f'{_DEVICES}={len(os.sched_getaffinity(0))}').strip()

from absl import flags  # noqa: E402  pylint: disable=wrong-import-position


_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory.')


def workdir() -> str:
  return _WORKDIR.value


def fail(error: Exception) -> None:
  """Ends the program with a one-line error and exit status 2."""
  print(f'error: {error}', file=sys.stderr)
  sys.exit(2)


def quiet_logging() -> None:
  """WARNING level unless --verbosity is given (Orbax logs every file it writes at INFO)."""
  from absl import logging  # pylint: disable=import-outside-toplevel
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
