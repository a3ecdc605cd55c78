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
(``padam_jax.crosscheck.model_trajectory``); prints a Markdown row per step (both losses,
the largest relative deviation of the parameters, of the BatchNorm running statistics
and of the eval-mode logits of a fixed test batch) and exits with status 1 when the run
fails its dtype's tolerance: float64, every deviation at most 1e-8 (``--tolerance``);
float32, where the twin also trains in float64, our float32 run no further from that
float64 run than 10x PyTorch's float32 run, or 1e-4 (``--tolerance``).

With ``--whole_run``: whole training runs of ``--seeds`` seeds in JAX and in PyTorch
(``padam_jax.crosscheck.whole_run``; the PyTorch side: ``padam_jax.reference.training``)::

    python -m experiments.crosscheck --whole_run --model wrn16_4 --width 0.125 \\
        --optimizer padam --weight_decay 5e-4 --batch_size 128 --epochs 6 \\
        --dataset fashion_mnist --data_dir /usr/share/datasets/fashion-mnist \\
        --train_size 8000 --test_size 5000 --seeds 6 --workdir runs/whole

prints per epoch each measure's mean +- std over seeds in both frameworks, then JAX minus
PyTorch of each run's mean over its last ``--final_epochs`` epochs with 90% and 95%
intervals, and an equivalence verdict (TOST; margins ``--margin_points`` for accuracies,
``--margin_relative`` of PyTorch's mean for losses): equivalent, different or undecided,
with the seeds an undecided test would need. ``--batches jax`` / ``torch`` are controls:
PyTorch trains on our batches from our initial weights, or we on PyTorch's. Runs go to
``WORKDIR/{jax,torch}/seed=<s>/`` (``metrics.jsonl``; finished runs are kept, so
rerunning reports without training), the report also to ``WORKDIR/report.md``.
"""

import dataclasses
import json

import numpy as np
import torch
from absl import app, flags

from experiments import config_flags
from padam_jax import alias, data
from padam_jax.crosscheck import model_trajectory, trajectory, whole_run
from padam_jax.reference import twins
from padam_jax.training import config as config_lib

_FIXTURE = flags.DEFINE_string(
  'fixture', 'tests/fixtures/padam_reference.npz', 'Committed trajectories.'
)
# The fields model_trajectory.Spec shares with TrainConfig: their flags, with the Spec's
# defaults (and no model: the optimizers alone).
_SPEC_FIELDS = (
  'model',
  'width',
  'optimizer',
  'batch_size',
  'learning_rate',
  'partial',
  'weight_decay',
  'seed',
)
config_flags.define_flags(
  _SPEC_FIELDS,
  defaults={
    **{
      f.name: f.default for f in dataclasses.fields(model_trajectory.Spec) if f.name in _SPEC_FIELDS
    },
    'model': None,
  },
  unset={'model': 'the optimizers alone'},
  notes={
    'model': 'Cross-checks whole training steps of this model.',
    'batch_size': 'Also the eval batch size.',
  },
)
_STEPS = flags.DEFINE_integer('steps', 20, 'Training steps.')
_DTYPE = flags.DEFINE_enum(
  'dtype',
  'float64',
  list(model_trajectory.DTYPES),
  'Parameters and compute dtype in both frameworks.',
)
_NUDGE = flags.DEFINE_float(
  'nudge',
  None,
  'A control instead of the check: compare our run with our own run from '
  'initial weights multiplied by 1 + nudge * N(0, 1) (e.g. 1e-15 in float64), to see how '
  'fast training alone amplifies a difference; no verdict.',
)
_TORCH_THREADS = flags.DEFINE_integer(
  'torch_threads', 1, 'PyTorch CPU threads (one is fastest for small models on a busy machine).'
)
_TOLERANCE = flags.DEFINE_float(
  'tolerance',
  None,
  'float64: the largest deviation allowed (default 1e-8); float32: the '
  'deviation from the float64 reference always allowed (default 1e-4).',
)

# --- whole runs (--whole_run); also uses --model, --width, --optimizer, --batch_size, --lr,
# --partial, --weight_decay and --torch_threads above.
_WHOLE_RUN = flags.DEFINE_bool(
  'whole_run',
  False,
  'Train whole runs of --seeds seeds in JAX and in PyTorch and test '
  'whether their final numbers are equivalent.',
)
_WORKDIR = flags.DEFINE_string(
  'workdir',
  None,
  'Whole run: where WORKDIR/jax/seed=<s>/ and WORKDIR/torch/seed=<s>/ go (finished runs are kept).',
)
# The run's other settings: the fields of TrainConfig, with whole-run defaults.
_WHOLE_RUN_FIELDS = ('dataset', 'data_dir', 'train_size', 'test_size', 'epochs', 'lr_schedule')
config_flags.define_flags(
  _WHOLE_RUN_FIELDS,
  defaults={'dataset': 'fashion_mnist', 'epochs': 8, 'lr_schedule': 'multistep'},
  notes=dict.fromkeys(_WHOLE_RUN_FIELDS, 'Whole run only.'),
)
_SEEDS = flags.DEFINE_integer('seeds', 5, 'Whole run: seeds FIRST..FIRST+S-1 in each framework.')
_FIRST_SEED = flags.DEFINE_integer(
  'first_seed', 0, 'Whole run: the first seed (FIRST), e.g. to train more seeds in another process.'
)
_BATCHES = flags.DEFINE_enum(
  'batches',
  'own',
  list(whole_run.BATCHES),
  'Whole run: own (each framework its own '
  'shuffling, augmentation and initial weights), jax (PyTorch trains on our batches from '
  'our initial weights) or torch (we train on PyTorch\'s, from its initial weights).',
)
_FINAL_EPOCHS = flags.DEFINE_integer(
  'final_epochs',
  None,
  'Whole run: a run\'s final '
  'value is its mean over this many last epochs '
  '(default: a quarter of --epochs, at least 1).',
)
_MARGIN_POINTS = flags.DEFINE_float(
  'margin_points', 1.0, 'Whole run: equivalence margin of the accuracies, in percentage points.'
)
_MARGIN_RELATIVE = flags.DEFINE_float(
  'margin_relative',
  0.03,
  'Whole run: equivalence margin of the losses, a fraction of PyTorch\'s mean.',
)


def check_optimizers() -> None:
  """The optimizer-only check: fixture and live oracles on the small problem."""
  fixture = np.load(_FIXTURE.value)
  problem = trajectory.Problem.from_arrays(fixture)
  settings = json.loads(str(fixture['settings_json']))
  print(
    f'{problem.steps} steps, {sum(v.size for v in problem.init.values())} '
    f'parameters in {len(problem.init)} leaves, float64\n'
  )
  print('| comparison | max relative deviation |\n|---|---|')
  for name, setting in settings.items():
    ours = trajectory.jax_trajectory(problem, trajectory.padam_jax_optimizer(setting))
    live = trajectory.torch_trajectory(problem, twins.torch_reference_padam(setting))
    stored = fixture[f'trajectory/{name}']
    print(
      f'| padam {name} vs reference Padam (live) | '
      f'{trajectory.max_relative_deviation(ours, live):.1e} |'
    )
    print(
      f'| padam {name} vs reference Padam (fixture) | '
      f'{trajectory.max_relative_deviation(ours, stored):.1e} |'
    )
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
  values = config_flags.field_values()
  spec = model_trajectory.Spec(
    **{field: values[field] for field in _SPEC_FIELDS}, dtype=_DTYPE.value, steps=_STEPS.value
  )
  nudge = _NUDGE.value
  print(
    f'{spec.model} width {spec.width}, {spec.optimizer} (lr {spec.lr}, weight decay '
    f'{spec.weight_decay}), {spec.dtype}, batch {spec.batch_size}, digits'
    + ('' if nudge is None else f'; control: JAX vs JAX, weights nudged by {nudge:g}')
    + '\n'
  )
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
  what = (
    'JAX vs PyTorch'
    if spec.dtype == 'float64'
    else f'JAX float32 vs the float64 reference (PyTorch float32: '
    f'{max(r.torch_error for r in rows if r.torch_error is not None):.1e})'
  )
  print(
    f'\nlargest deviation {what}: {measured:.1e}, allowed {allowed:.1e}: '
    f'{"passed" if passed else "FAILED"}'
  )
  return 0 if passed else 1


def check_whole_run() -> int:
  """Whole runs in both frameworks and the equivalence verdict; exit status 0."""
  values = config_flags.field_values()
  if values['model'] is None or _WORKDIR.value is None:
    raise app.UsageError('--whole_run needs --model and --workdir')
  del values['seed']  # --seeds and --first_seed choose the runs' seeds
  if not alias.registered(values['optimizer']).takes_partial:
    values['partial'] = None
  base = config_lib.TrainConfig(**values)
  seeds = list(range(_FIRST_SEED.value, _FIRST_SEED.value + _SEEDS.value))
  torch.set_num_threads(_TORCH_THREADS.value)
  try:
    config = config_lib.resolve(base)  # the runs' configuration, their seeds aside
    final_epochs = _FINAL_EPOCHS.value or max(1, config.epochs // 4)
    whole_run.run(base, seeds, _WORKDIR.value, _BATCHES.value)
    text, _ = whole_run.report(
      _WORKDIR.value, seeds, final_epochs, _MARGIN_POINTS.value, _MARGIN_RELATIVE.value
    )
  except ValueError as error:
    raise app.UsageError(str(error)) from None
  text = (
    f'{config.model} width {config.width}, {config.optimizer} (lr {config.learning_rate}, '
    f'weight decay {config.weight_decay}'
    + ('' if config.partial is None else f', p {config.partial:g}')
    + f'), {config.lr_schedule} lr, batch {config.batch_size}, {config.epochs} epochs, '
    f'{config.dataset} (train {config.train_size or "all"}, test '
    f'{config.test_size or "all"}), batches: {_BATCHES.value}\n\n{text}'
  )
  print(f'\n{text}')
  print(f'\nreport: {whole_run.write_report(_WORKDIR.value, text)}')
  return 0


def main(argv):
  del argv
  if _WHOLE_RUN.value:
    return check_whole_run()
  if config_flags.field_values()['model'] is None:
    check_optimizers()
    return 0
  return check_model()


if __name__ == '__main__':
  app.run(main)
