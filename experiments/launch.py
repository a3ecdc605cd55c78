"""What the launchers share: their entry point, --workdir, joining the hosts of a
multi-host run, errors (one line and an exit status each), quiet logging and progress lines.

A launcher ends with ``launch.run(main)`` rather than ``app.run(main)``: ``run`` first
gives XLA ``host_device_count()`` host devices, so that on CPU every core works on each
batch, lengthens the timeouts of their collectives (``hosts.COLLECTIVE_TIMEOUTS``), so
that a loaded machine does not end a run, and sizes the CPU client's thread pool so that
their collectives cannot deadlock (``hosts.host_environment``); ``XLA_FLAGS`` keeps any of
these flags it already gives, and a ``PJRT_NPROC`` already set is kept. XLA reads
``XLA_FLAGS`` when JAX creates its CPU client, at the first JAX computation, so importing jax
before ``run`` is fine.
"""

import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from absl import app, flags, logging

from experiments import config_flags, exit_codes
from padam_jax.data import DatasetUnavailableError
from padam_jax.distributed import hosts
from padam_jax.rundir import faults, runlog
from padam_jax.training.config import ConfigError

# Two rather than one: while one device waits (for an all-reduce, or for a convolution
# running on the shared thread pool), the other keeps its core busy (measured:
# docs/measurements.md#host-devices). Not four: on 2 cores a batch would be split over 8
# devices, and the default evaluation batch (100) is not divisible by 8; an indivisible
# batch is replicated (every device computes all of it, see ``sharding``).
HOST_DEVICES_PER_CORE = 2


def host_device_count(cores: int) -> int:
  """``HOST_DEVICES_PER_CORE * cores`` rounded down to a power of two, so that it divides
  the usual power-of-two batch sizes (a count of 24 would not split a batch of 128)."""
  return 1 << (HOST_DEVICES_PER_CORE * cores).bit_length() - 1


def use_host_defaults() -> None:
  """Sets ``hosts.host_environment``: ``host_device_count()`` host devices, the
  collectives' timeouts and a thread pool they cannot starve, each unless given; before the
  first JAX computation, or XLA never reads them."""
  os.environ.update(
    hosts.host_environment(os.environ, host_device_count(len(os.sched_getaffinity(0))))
  )


def run(main: Callable[[list[str]], Any]) -> None:
  """A launcher's entry point: ``app.run(main)`` with XLA's host defaults set first."""
  use_host_defaults()
  app.run(main)


_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory.')
_COORDINATOR = flags.DEFINE_string(
  'coordinator_address',
  None,
  'Multi-host runs: HOST:PORT of process 0 (the same on '
  'every host). Without it, a managed cluster (SLURM, TPU pod, ...) is detected from '
  'the environment; elsewhere the run is one process.',
)
_NUM_PROCESSES = flags.DEFINE_integer(
  'num_processes', None, 'Multi-host runs: the number of processes.'
)
_PROCESS_ID = flags.DEFINE_integer(
  'process_id', None, 'Multi-host runs: this process, 0 .. num_processes - 1.'
)
_TENSORBOARD = flags.DEFINE_bool(
  'tensorboard',
  True,
  'Also write TensorBoard summaries beside each metrics.jsonl, in '
  'RUN_DIR/tensorboard/ (tensorboard --logdir WORKDIR).',
)


def workdir() -> str:
  """--workdir, which every launcher that calls this marks required."""
  value = _WORKDIR.value
  if value is None:
    raise app.UsageError('--workdir is required')
  return value


def start() -> None:
  """The first thing in a launcher's ``main``: joins the other processes of a multi-host
  run (before any JAX work), then quiets logging."""
  with failing_on((ValueError,)):
    hosts.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  _quiet_logging()


def say(message: str) -> None:
  """A progress line, printed by the primary process only."""
  if hosts.is_primary():
    print(message, flush=True)


def tensorboard() -> bool:
  return _TENSORBOARD.value


def fail(
  error: Exception, label: str = 'error', exit_code: int = exit_codes.EXIT_ERROR
) -> NoReturn:
  """Ends the program with a one-line message (and the traceback under --verbosity); a bad
  configuration field is named by its flag (``--lr``)."""
  if flags.FLAGS['verbosity'].present:
    traceback.print_exc()
  message = config_flags.describe(error) if isinstance(error, ConfigError) else error
  print(f'{label}: {message}', file=sys.stderr)
  sys.exit(exit_code)


# The errors a launcher reports in one line rather than a traceback, by stage: reading its
# settings and data (bad flags, a missing dataset), then training (a run directory of other
# settings, and every ``faults.RunError``: a full disk, no readable checkpoint, divergence...).
SETUP_ERRORS: tuple[type[Exception], ...] = (ValueError, DatasetUnavailableError)
TRAINING_ERRORS: tuple[type[Exception], ...] = (runlog.ConfigMismatchError, faults.RunError)


@contextlib.contextmanager
def failing_on(errors: tuple[type[Exception], ...]) -> Iterator[None]:
  """Ends the program through ``fail`` when its body raises one of ``errors``: a
  ``faults.RunError`` with its label and exit status (``exit_codes.exit_code``), any
  other as ``error`` with ``exit_codes.EXIT_ERROR``; other exceptions pass through."""
  try:
    yield
  except errors as error:
    if isinstance(error, faults.RunError):
      fail(error, error.label, exit_codes.exit_code(error))
    fail(error)


def _quiet_logging() -> None:
  """Unless --verbosity is given: WARNING level (Orbax logs every file it writes at INFO)
  and no tracebacks of Orbax's background threads for failures reported in one line."""
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
    faults.quiet_background_failures(logging.get_absl_handler())
