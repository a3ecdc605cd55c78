"""The launchers' exit statuses, decided from the error that stopped a run.

The library raises (``padam_jax.rundir.faults``); which status a shell script or a
scheduler sees is the launchers' choice, made here.
"""

from padam_jax.rundir import faults

# A problem the user can fix (bad flags, missing data, a full disk, an unwritable run
# directory, no readable checkpoint), then rerun the same command.
EXIT_ERROR = 2
# The loss became non-finite or grew too large: the run is not trained further, and
# reruns report it again.
EXIT_DIVERGED = 3


def exit_code(error: Exception) -> int:
  """The status a launcher ends with after ``error``."""
  return EXIT_DIVERGED if isinstance(error, faults.DivergedError) else EXIT_ERROR
