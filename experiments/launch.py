"""What the launchers share: host devices, --workdir, joining the hosts of a multi-host
run, errors, quiet logging and progress lines.

Importing this module (before anything imports jax) exposes ``host_device_count()``
XLA host devices (unless ``XLA_FLAGS`` sets a count), so that on CPU every core works
on each batch: about ``HOST_DEVICES_PER_CORE`` per core. Two per core measured faster
than one (WRN-16-4 at width 0.25 and 1.0, 2-core AMD EPYC): while one device waits (for
an all-reduce or a convolution running on the shared thread pool), the other keeps its
core busy. Four per core was faster still at width 0.25, but a batch split over 8
devices needs a size divisible by 8, and the default evaluation batch (100) is not; an
indivisible batch is replicated (every device computes all of it, see ``sharding``).
It also lengthens the timeouts of their collectives (``COLLECTIVE_TIMEOUTS``, unless
``XLA_FLAGS`` sets them), so that a loaded machine does not end a run.
"""

import os
import sys
import traceback

HOST_DEVICES_PER_CORE = 2


def host_device_count(cores: int) -> int:
  """``HOST_DEVICES_PER_CORE * cores`` rounded down to a power of two, so that it divides
  the usual power-of-two batch sizes (a count of 24 would not split a batch of 128)."""
  return 1 << (HOST_DEVICES_PER_CORE * cores).bit_length() - 1


_DEVICES = '--xla_force_host_platform_device_count'
# How long a collective (an all-reduce between host devices) waits for a late peer before
# XLA ends the process (40 s by default), and before it warns that one is stuck. Long
# enough that a loaded machine slows a run down instead of ending it; short enough that a
# collective that will never complete (docs/reproduction.md records four: every thread of
# the process idle) ends the process within minutes, and its rerun resumes.
COLLECTIVE_TIMEOUTS = {'--xla_cpu_collective_call_terminate_timeout_seconds': 600,
                       '--xla_cpu_collective_call_warn_stuck_timeout_seconds': 120}


def with_host_defaults(xla_flags: str, cores: int) -> str:
  """``xla_flags`` plus the host-device count and ``COLLECTIVE_TIMEOUTS``, each flag unless
  ``xla_flags`` already gives it."""
  defaults = {_DEVICES: host_device_count(cores), **COLLECTIVE_TIMEOUTS}
  added = [f'{flag}={value}' for flag, value in defaults.items() if flag not in xla_flags]
  return ' '.join([xla_flags, *added]).strip()


os.environ['XLA_FLAGS'] = with_host_defaults(os.environ.get('XLA_FLAGS', ''),
                                             len(os.sched_getaffinity(0)))

from absl import flags  # noqa: E402  pylint: disable=wrong-import-position


_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'Multi-host runs: HOST:PORT of process 0 (the same on '
    'every host). Without it, a managed cluster (SLURM, TPU pod, ...) is detected from '
    'the environment; elsewhere the run is one process.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None,
                                      'Multi-host runs: the number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None,
                                   'Multi-host runs: this process, 0 .. num_processes - 1.')
_TENSORBOARD = flags.DEFINE_bool(
    'tensorboard', True, 'Also write TensorBoard summaries beside each metrics.jsonl, in '
    'RUN_DIR/tensorboard/ (tensorboard --logdir WORKDIR).')


def workdir() -> str:
  return _WORKDIR.value


def start() -> None:
  """The first thing in a launcher's ``main``: joins the other processes of a multi-host
  run (before any JAX work), then quiets logging."""
  from padam_jax.training import hosts  # pylint: disable=import-outside-toplevel
  try:
    hosts.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  except ValueError as error:
    fail(error)
  _quiet_logging()


def say(message: str) -> None:
  """A progress line, printed by the primary process only."""
  from padam_jax.training import hosts  # pylint: disable=import-outside-toplevel
  if hosts.is_primary():
    print(message, flush=True)


def tensorboard() -> bool:
  return _TENSORBOARD.value


def fail(error: Exception, label: str = 'error', exit_code: int = 2) -> None:
  """Ends the program with a one-line message (and the traceback under --verbosity); a bad
  configuration field is named by its flag (``--lr``)."""
  from experiments import config_flags  # pylint: disable=import-outside-toplevel
  from padam_jax.training.config import ConfigError  # pylint: disable=import-outside-toplevel
  if flags.FLAGS['verbosity'].present:
    traceback.print_exc()
  message = config_flags.describe(error) if isinstance(error, ConfigError) else error
  print(f'{label}: {message}', file=sys.stderr)
  sys.exit(exit_code)


def _quiet_logging() -> None:
  """Unless --verbosity is given: WARNING level (Orbax logs every file it writes at INFO)
  and no tracebacks of Orbax's background threads for failures reported in one line."""
  from absl import logging  # pylint: disable=import-outside-toplevel
  from padam_jax.training import faults  # pylint: disable=import-outside-toplevel
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
    faults.quiet_background_failures(logging.get_absl_handler())
