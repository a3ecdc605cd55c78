"""Prints how far our optimizers deviate from their PyTorch oracles (float64).

    python -m experiments.crosscheck

For each Padam setting: our ``padam`` vs the re-written authors' Padam, both live
and against the committed fixture; then each oracle written by others
(``torch.optim``, ``pytorch_optimizer.PAdam``); then the same on complex
parameters (their real views compared). Deviation = max over steps of
``|ours - ref|_inf / |ref|_inf`` on the parameters.
"""

import json

from absl import app, flags
import numpy as np

from padam_jax.reference import trajectory

_FIXTURE = flags.DEFINE_string(
    'fixture', 'tests/fixtures/padam_reference.npz', 'Committed trajectories.')


def main(argv):
  del argv
  fixture = np.load(_FIXTURE.value)
  problem = trajectory.Problem.from_arrays(fixture)
  settings = json.loads(str(fixture['settings_json']))
  print(f'{problem.steps} steps, {sum(v.size for v in problem.init.values())} '
        f'parameters in {len(problem.init)} leaves, float64\n')
  print('| comparison | max relative deviation |\n|---|---|')
  for name, setting in settings.items():
    ours = trajectory.jax_trajectory(problem, trajectory.padam_jax_optimizer(setting))
    live = trajectory.torch_trajectory(problem, trajectory.torch_reference_padam(setting))
    stored = fixture[f'trajectory/{name}']
    print(f'| padam {name} vs reference Padam (live) | '
          f'{trajectory.max_relative_deviation(ours, live):.1e} |')
    print(f'| padam {name} vs reference Padam (fixture) | '
          f'{trajectory.max_relative_deviation(ours, stored):.1e} |')
  for name, (ours_fn, torch_fn) in trajectory.ORACLES.items():
    ours = trajectory.jax_trajectory(problem, ours_fn())
    ref = trajectory.torch_trajectory(problem, torch_fn)
    print(f'| {name} | {trajectory.max_relative_deviation(ours, ref):.1e} |')
  complex_problem = trajectory.make_complex_problem()
  for name in trajectory.COMPLEX_ORACLES:
    ours, ref = trajectory.complex_trajectories(name, complex_problem)
    print(f'| {name} | {trajectory.max_relative_deviation(ours, ref):.1e} |')


if __name__ == '__main__':
  app.run(main)
