"""Trains a hyperparameter grid, by default in one compiled program; rerun to resume.

    python -m experiments.sweep --dataset digits --model resnet18 --width 0.25 \\
        --epochs 5 --grid lr=0.1,0.01 --grid partial=0.25,0.125,0.0625 \\
        --workdir runs/grid

The grid is the product of the ``--grid NAME=V1,V2,...`` flags (NAME: the flag, or
field name, of an optimizer hyperparameter or the seed, such as lr, partial, b2 or seed;
``--grid``'s help lists them); every other setting takes the same flags as
``experiments.train``. Each configuration gets ``WORKDIR/<name>/`` with its
``config.json``, ``metrics.jsonl`` and TensorBoard summaries (``tensorboard/``, unless
``--notensorboard``); ``WORKDIR/sweep.json`` lists them.
"""

from absl import flags

from experiments import config_flags, launch
from padam_jax.training import config as config_lib
from padam_jax.training import sweep

config_flags.define_flags()
_GRID = flags.DEFINE_multi_string(
  'grid',
  [],
  'NAME=V1,V2,... (repeatable; the grid is the product). NAME: '
  + ', '.join(map(config_flags.flag_name, config_lib.GRID_AXES))
  + '.',
)
_MODE = flags.DEFINE_enum(
  'mode',
  'auto',
  list(sweep.MODES),
  'vmap: all configurations in one program; sequential: one after the other as '
  'single runs; auto: vmap on GPU/TPU, sequential on CPU (measured faster there).',
)


def main(argv):
  del argv
  from padam_jax.training import trainer as trainer_lib

  launch.start()
  say = launch.say
  with launch.failing_on(launch.SETUP_ERRORS):
    grid = sweep.parse_grid(_GRID.value)
    clash = sorted(set(map(config_flags.flag_name, grid)) & config_flags.explicit_flags())
    if clash:
      raise ValueError(
        f'--{clash[0]} is fixed by its flag and varied by --grid: give one of the two'
      )
    base = config_flags.config_from_flags()
    members = sweep.expand(base, grid)  # validates every configuration
    dataset = trainer_lib.load_config_dataset(members[0].config)
  with launch.failing_on(launch.TRAINING_ERRORS):
    results = sweep.run_sweep(
      base,
      grid,
      launch.workdir(),
      mode=_MODE.value,
      progress=say,
      dataset=dataset,
      tensorboard=launch.tensorboard(),
    )
  say('| run | epochs | final train loss | final test error |\n|---|---:|---:|---:|')
  for name, records in results.items():
    last = records[-1] if records else {}
    if last.get('diverged'):
      say(f'| {name} | {len(records)} | diverged | diverged |')
    elif last:
      say(
        f'| {name} | {len(records)} | {last["train_loss"]:.4f} | {100 * last["test_error"]:.2f}% |'
      )


if __name__ == '__main__':
  flags.mark_flag_as_required('workdir')
  launch.run(main)
