"""Prints how far our optimizers, and whole training steps of our models, deviate from PyTorch.

    python -m experiments.crosscheck
    python -m experiments.crosscheck --model resnet18 --width 0.25 --optimizer padam \\
        --steps 20 --dtype float64

Without ``--model``: for each Padam setting, our ``padam`` vs the re-written authors'
Padam, both live and against the committed fixture; then each oracle written by others
(``torch.optim``, ``pytorch_optimizer.PAdam``); then the same on complex parameters
(their real views compared). Deviation = max over steps of
``|ours - ref|_inf / |ref|_inf`` on the parameters (float64).

With ``--model``: ``--steps`` training steps of the model in JAX and of its PyTorch twin
from the same initial weights on the same augmented batches of scikit-learn's digits
(``padam_jax.reference.model_trajectory``); prints a Markdown row per step (both losses,
the largest relative deviation of the parameters, of the BatchNorm running statistics
and of the eval-mode logits of a fixed test batch) and exits with status 1 when the run
fails its dtype's tolerance: float64, every deviation at most 1e-8 (``--tolerance``);
float32, where the twin also trains in float64, our float32 run no further from that
float64 run than 10x PyTorch's float32 run, or 1e-4 (``--tolerance``).
"""

import dataclasses
import json

from absl import app, flags
import numpy as np
import torch

from experiments import config_flags
from padam_jax import data
from padam_jax.reference import model_trajectory, trajectory

_FIXTURE = flags.DEFINE_string(
    'fixture', 'tests/fixtures/padam_reference.npz', 'Committed trajectories.')
# The fields model_trajectory.Spec shares with TrainConfig: their flags, with the Spec's
# defaults (and no model: the optimizers alone).
_SPEC_FIELDS = ('model', 'width', 'optimizer', 'batch_size', 'learning_rate', 'partial',
                'weight_decay', 'seed')
config_flags.define_flags(
    _SPEC_FIELDS,
    defaults={**{f.name: f.default for f in dataclasses.fields(model_trajectory.Spec)
                 if f.name in _SPEC_FIELDS}, 'model': None},
    unset={'model': 'the optimizers alone'},
    notes={'model': 'Cross-checks whole training steps of this model.',
           'batch_size': 'Also the eval batch size.'})
_STEPS = flags.DEFINE_integer('steps', 20, 'Training steps.')
_DTYPE = flags.DEFINE_enum('dtype', 'float64', list(model_trajectory.DTYPES),
                           'Parameters and compute dtype in both frameworks.')
_NUDGE = flags.DEFINE_float(
    'nudge', None, 'A control instead of the check: compare our run with our own run from '
    'initial weights multiplied by 1 + nudge * N(0, 1) (e.g. 1e-15 in float64), to see how '
    'fast training alone amplifies a difference; no verdict.')
_TORCH_THREADS = flags.DEFINE_integer(
    'torch_threads', 1, 'PyTorch CPU threads (one is fastest for small models on a busy machine).')
_TOLERANCE = flags.DEFINE_float(
    'tolerance', None, 'float64: the largest deviation allowed (default 1e-8); float32: the '
    'deviation from the float64 reference always allowed (default 1e-4).')


def check_optimizers() -> None:
  """The optimizer-only check: fixture and live oracles on the small problem."""
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


def check_model() -> int:
  """The whole-training-step check; returns the exit status."""
  spec = model_trajectory.Spec(**config_flags.field_values(), dtype=_DTYPE.value,
                               steps=_STEPS.value)
  nudge = _NUDGE.value
  print(f'{spec.model} width {spec.width}, {spec.optimizer} (lr {spec.lr}, weight decay '
        f'{spec.weight_decay}), {spec.dtype}, batch {spec.batch_size}, digits'
        + ('' if nudge is None else f'; control: JAX vs JAX, weights nudged by {nudge:g}')
        + '\n')
  torch.set_num_threads(_TORCH_THREADS.value)
  if nudge is None:
    print(model_trajectory.table_header(spec.dtype))
  else:
    print(model_trajectory.table_header('float64').replace('PyTorch', 'JAX nudged'))
  rows = []
  for row in model_trajectory.run(spec, data.load_dataset('digits'), nudge):
    print(model_trajectory.table_row(row), flush=True)
    rows.append(row)
  if nudge is not None:
    print(f'\nlargest deviation: {max(r.deviation for r in rows):.1e} (control, no verdict)')
    return 0
  measured, allowed = model_trajectory.judge(rows, spec.dtype, _TOLERANCE.value)
  passed = measured <= allowed  # False for NaN
  what = ('JAX vs PyTorch' if spec.dtype == 'float64' else
          f'JAX float32 vs the float64 reference (PyTorch float32: '
          f'{max(r.torch_error for r in rows):.1e})')
  print(f'\nlargest deviation {what}: {measured:.1e}, allowed {allowed:.1e}: '
        f'{"passed" if passed else "FAILED"}')
  return 0 if passed else 1


def main(argv):
  del argv
  if config_flags.field_values()['model'] is None:
    check_optimizers()
    return 0
  return check_model()


if __name__ == '__main__':
  app.run(main)
