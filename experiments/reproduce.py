"""The student reproduction's experiments, one command each: trains every sweep a suite
needs, then plots.

    python -m experiments.reproduce --suite all --scale cpu --seeds 1 --workdir runs/repro

Suites: figure1 (4 optimizers x 3 architectures), table2 (Wide ResNet accuracy at
1/4, 1/2, 3/4 and all of the epochs), figure2 (p in {1/4, 1/8, 1/16}), figure3 (p x
lr on ResNet-18), p_schedule (the reproduction's proposed p and lr schedules), all (those
five); and optimizers (the four optimizers on each network, Padam as a sweep of its own:
Chen & Gu's comparison, for ``--preset paper``).
``--scale full`` is the reproduction's protocol on CIFAR-10 (for GPUs); ``--scale cpu`` a
reduced one on Fashion-MNIST that the same code runs on 2 CPU cores. Every sweep
lives in ``WORKDIR/<sweep>/``; rerunning skips complete runs and resumes the others.
Figures and tables go to ``WORKDIR/figures/`` (``experiments.plot --reproduction
WORKDIR`` rebuilds them from the runs' ``metrics.jsonl``).
"""

import os

from absl import flags

from experiments import config_flags, launch
from padam_jax.distributed import hosts
from padam_jax.reproduction import suites
from padam_jax.training import sweep as sweep_lib

_SUITE = flags.DEFINE_multi_enum(
  'suite',
  ['all'],
  [*suites.SUITE_NAMES, 'all'],
  'Suites to run (repeatable; all: every suite but optimizers).',
)
_SCALE = flags.DEFINE_enum(
  'scale',
  'cpu',
  list(suites.SCALES),
  '; '.join(f'{k}: {v.description}' for k, v in suites.SCALES.items()),
)
_SEEDS = flags.DEFINE_integer('seeds', 1, 'Seeds per configuration (error bars).')
_MODE = flags.DEFINE_enum(
  'mode', 'auto', list(sweep_lib.MODES), 'How each sweep trains its grid (see experiments.sweep).'
)
config_flags.define_flags(
  ('preset', 'data_dir', 'epochs', 'validation_size'),
  unset={'epochs': 'the scale\'s, else the preset\'s'},
  notes={
    'preset': 'A --scale that sets its own epochs overrides the preset\'s.',
    'epochs': 'Every run\'s; a longer constant-lr run resumes.',
  },
)
_SWEEP = flags.DEFINE_multi_string(
  'sweep',
  None,
  'Train only these sweeps of the suites '
  '(repeatable; for parallel processes, one each); the '
  'report is then left to experiments.plot.',
)
_PLOT_ONLY = flags.DEFINE_bool('plot_only', False, 'Only build figures and tables.')


def main(argv):
  del argv
  from padam_jax.reproduction import claims_table, plans, report
  from padam_jax.training import trainer as trainer_lib

  launch.start()
  say = launch.say
  workdir = launch.workdir()
  scale = suites.SCALES[_SCALE.value]
  with launch.failing_on(launch.SETUP_ERRORS):
    chosen = config_flags.config_from_flags()  # preset, data_dir, epochs, validation_size
    plan = plans.build(
      _SUITE.value,
      _SWEEP.value,
      scale,
      chosen.preset,
      _SEEDS.value,
      chosen.data_dir,
      chosen.epochs,
      chosen.validation_size,
    )
    datasets = {}
    if not _PLOT_ONLY.value:
      first = plan[0].members[0].config
      datasets[first.dataset] = trainer_lib.load_config_dataset(first)
  if not _PLOT_ONLY.value:
    runs = sum(len(planned.members) for planned in plan)
    say(
      f'{len(plan)} sweeps, {runs} runs ({scale.description}; preset {chosen.preset}) in {workdir}'
    )
    with launch.failing_on(launch.TRAINING_ERRORS):
      plans.train(plan, workdir, datasets, _MODE.value, say, launch.tensorboard())
  if not hosts.is_primary():  # every process has trained; one writes the report
    return
  if _SWEEP.value:
    say(
      f'report: python -m experiments.plot --reproduction {workdir} once every sweep of '
      'the suites is trained'
    )
    return
  with launch.failing_on((FileNotFoundError, ValueError)):
    built = report.build(workdir, _SUITE.value, os.path.join(workdir, 'figures'))
  for name, value in built.items():
    say(f'\n{name}:\n{value}')
  say(f'\nclaims:\n{claims_table.write(workdir, os.path.join(workdir, "figures"))}')


if __name__ == '__main__':
  flags.mark_flag_as_required('workdir')
  launch.run(main)
