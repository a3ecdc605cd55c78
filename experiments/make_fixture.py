"""Writes the committed PyTorch-reference trajectories used by the tests.

    python -m experiments.make_fixture [--output tests/fixtures/padam_reference.npz]

Runs the re-written authors' Padam (``padam_jax.reference.optim``) on the
trajectory problem for every setting in ``PADAM_SETTINGS`` and stores the
problem, the settings and each float64 trajectory, so the check runs without torch.
"""

import json
from typing import Any

import numpy as np
from absl import app, flags

from padam_jax.crosscheck import trajectory
from padam_jax.reference import twins

_OUTPUT = flags.DEFINE_string(
  'output', 'tests/fixtures/padam_reference.npz', 'Where to write the .npz.'
)
_STEPS = flags.DEFINE_integer('steps', 250, 'Optimizer steps per trajectory.')


def main(argv):
  del argv
  problem = trajectory.make_problem(steps=_STEPS.value)
  arrays: dict[str, Any] = problem.to_arrays()  # more arrays join it below
  for name, setting in trajectory.PADAM_SETTINGS.items():
    arrays[f'trajectory/{name}'] = trajectory.torch_trajectory(
      problem, twins.torch_reference_padam(setting)
    )
  arrays['settings_json'] = np.array(json.dumps(trajectory.PADAM_SETTINGS))
  np.savez_compressed(_OUTPUT.value, **arrays)
  print(
    f'wrote {len(trajectory.PADAM_SETTINGS)} trajectories of '
    f'{problem.steps} steps to {_OUTPUT.value}'
  )


if __name__ == '__main__':
  app.run(main)
