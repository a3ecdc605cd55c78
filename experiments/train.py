"""Trains one model with one optimizer; rerun the same command to resume.

    python -m experiments.train --dataset digits --model resnet18 --width 0.25 \\
        --epochs 15 --workdir runs/demo

Writes ``WORKDIR/config.json``, ``WORKDIR/metrics.jsonl`` (one JSON object per
epoch), ``WORKDIR/checkpoints/`` (the last two epochs), ``WORKDIR/curves.png`` and,
unless ``--notensorboard``, TensorBoard summaries in ``WORKDIR/tensorboard/``.
Rerunning with a larger ``--epochs`` continues from the last checkpoint.

Exit status: 0 done; 2 an error the user can fix (bad flags, missing data, a full
disk, an unwritable run directory, no readable checkpoint, another process training
in the same run directory), then rerun the same command; 3 the loss became non-finite
(the run is not trained further; reruns report it again). Messages are one line;
``--verbosity`` adds tracebacks.
"""

import os

from absl import flags

from experiments import config_flags, launch
from padam_jax.distributed import hosts
from padam_jax.training import config as config_lib

config_flags.define_flags()


def main(argv):
  del argv
  from experiments.plot import plot_runs
  from padam_jax.training import loop
  from padam_jax.training import trainer as trainer_lib

  launch.start()
  say = launch.say
  workdir = launch.workdir()
  with launch.failing_on(launch.SETUP_ERRORS):
    config = config_lib.resolve(config_flags.config_from_flags())
    dataset = trainer_lib.load_config_dataset(config)
  with launch.failing_on(launch.TRAINING_ERRORS):
    loop.train_and_evaluate(
      config, workdir, progress=say, dataset=dataset, tensorboard=launch.tensorboard()
    )
  curves = os.path.join(workdir, 'curves.png')
  if not hosts.is_primary():
    return
  metrics = os.path.join(workdir, 'metrics.jsonl')
  try:
    plot_runs([workdir], curves, title=f'{config.model} on {config.dataset}, {config.optimizer}')
  except ModuleNotFoundError as error:  # matplotlib (the [train] extra) is not installed
    if error.name != 'matplotlib':
      raise
    say(f'metrics: {metrics}\ncurves: not drawn (no matplotlib)')
    return
  say(f'metrics: {metrics}\ncurves: {curves}')


if __name__ == '__main__':
  flags.mark_flag_as_required('workdir')
  launch.run(main)
