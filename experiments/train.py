"""Trains one model with one optimizer; rerun the same command to resume.

    python -m experiments.train --dataset digits --model resnet18 --width 0.25 \\
        --epochs 15 --workdir runs/demo

Writes ``WORKDIR/config.json``, ``WORKDIR/metrics.jsonl`` (one JSON object per
epoch), ``WORKDIR/checkpoints/`` (the last two epochs) and ``WORKDIR/curves.png``.
Rerunning with a larger ``--epochs`` continues from the last checkpoint.

Exit status: 0 done; 2 an error the user can fix (bad flags, missing data, a full
disk, an unwritable run directory, no readable checkpoint), then rerun the same
command; 3 the loss became non-finite (the run is not trained further; reruns
report it again). Messages are one line; ``--verbosity`` adds tracebacks.
"""

import os
import sys
import traceback

# Use every core on CPU: one host device per core, the batch split over them.
_DEVICES = '--xla_force_host_platform_device_count'
if _DEVICES not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (f"{os.environ.get('XLA_FLAGS', '')} "
                             f'{_DEVICES}={len(os.sched_getaffinity(0))}').strip()

from absl import app, flags, logging  # noqa: E402  pylint: disable=wrong-import-position

from padam_jax import config as config_lib  # noqa: E402
from padam_jax import faults  # noqa: E402
from padam_jax.alias import OPTIMIZERS  # noqa: E402
from padam_jax.data import DATASETS, DatasetUnavailableError  # noqa: E402
from padam_jax.models import MODELS  # noqa: E402

_MODEL = flags.DEFINE_enum('model', 'resnet18', sorted(MODELS), 'Architecture.')
_WIDTH = flags.DEFINE_float('width', 1.0, 'Channel multiplier (1 = the paper\'s model).')
_DATASET = flags.DEFINE_enum('dataset', 'cifar10', sorted(DATASETS), 'Dataset.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'tfds data dir, or the folder of '
                                'the Fashion-MNIST IDX files.')
_OPTIMIZER = flags.DEFINE_enum('optimizer', 'padam', sorted(OPTIMIZERS), 'Optimizer.')
_PRESET = flags.DEFINE_enum(
    'preset', 'seed', sorted(config_lib.PRESETS),
    'seed: weight decay 0.005, constant lr, 100 epochs (the seed\'s Table 1); '
    'paper: weight decay 5e-4, x0.1 at 50%/75%, 200 epochs (the authors\' scripts).')
_LR = flags.DEFINE_float('lr', None, 'Learning rate (default: the seed\'s Table 1: '
                         '0.1 for padam/padamw/sgdm, 0.001 for adam/amsgrad/adamw).')
_PARTIAL = flags.DEFINE_float('partial', None, 'Padam\'s p (default 1/8).')
_PARTIAL_END = flags.DEFINE_float('partial_end', None,
                                  'If set, p moves linearly from --partial to this.')
_WEIGHT_DECAY = flags.DEFINE_float('weight_decay', None, 'Weight decay (default: preset).')
_EPOCHS = flags.DEFINE_integer('epochs', None, 'Epochs (default: preset).')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 128, 'Training batch size.')
_LR_SCHEDULE = flags.DEFINE_enum('lr_schedule', None, list(config_lib.LR_SCHEDULES),
                                 'Learning-rate schedule (default: preset).')
_DROP_REMAINDER = flags.DEFINE_bool(
    'drop_remainder', False, 'Drop the last partial batch (default: keep it, as the '
    'authors: 391 steps per CIFAR epoch).')
_COMPUTE_DTYPE = flags.DEFINE_enum('compute_dtype', 'float32',
                                   list(config_lib.COMPUTE_DTYPES),
                                   'Activation dtype (bfloat16 for GPU/TPU).')
_TRAIN_SUBSET = flags.DEFINE_integer(
    'train_subset', None, 'Train on the first N training examples only (quick checks); '
    'the test set stays whole.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory.', required=True)
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of init, shuffling and augmentation.')


def config_from_flags() -> config_lib.TrainConfig:
  return config_lib.TrainConfig(
      model=_MODEL.value, width=_WIDTH.value, dataset=_DATASET.value,
      data_dir=_DATA_DIR.value, optimizer=_OPTIMIZER.value, preset=_PRESET.value,
      learning_rate=_LR.value, partial=_PARTIAL.value, partial_end=_PARTIAL_END.value,
      weight_decay=_WEIGHT_DECAY.value, epochs=_EPOCHS.value,
      batch_size=_BATCH_SIZE.value, lr_schedule=_LR_SCHEDULE.value,
      drop_remainder=_DROP_REMAINDER.value, train_subset=_TRAIN_SUBSET.value,
      seed=_SEED.value,
      compute_dtype=_COMPUTE_DTYPE.value)


def _fail(error: Exception, label: str = 'error', exit_code: int = faults.EXIT_ERROR) -> None:
  """One line on stderr and a non-zero status; the traceback too under --verbosity."""
  if flags.FLAGS['verbosity'].present:
    traceback.print_exc()
  print(f'{label}: {error}', file=sys.stderr)
  sys.exit(exit_code)


def main(argv):
  del argv
  from experiments.plot import plot_runs  # pylint: disable=import-outside-toplevel
  from padam_jax import runlog, train  # pylint: disable=import-outside-toplevel
  from padam_jax.data import load_dataset  # pylint: disable=import-outside-toplevel

  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file it writes at INFO
    faults.quiet_background_failures(logging.get_absl_handler())
  say = lambda message: print(message, flush=True)  # noqa: E731
  try:
    config = config_lib.resolve(config_from_flags())
    dataset = load_dataset(config.dataset, config.data_dir).with_train_subset(
        config.train_subset)
  except (ValueError, DatasetUnavailableError) as error:
    _fail(error)
  try:
    train.train_and_evaluate(config, _WORKDIR.value, progress=say, dataset=dataset)
  except runlog.ConfigMismatchError as error:
    _fail(error)
  except faults.RunError as error:
    _fail(error, error.label, error.exit_code)
  curves = os.path.join(_WORKDIR.value, 'curves.png')
  plot_runs([_WORKDIR.value], curves,
            title=f'{config.model} on {config.dataset}, {config.optimizer}')
  say(f'metrics: {os.path.join(_WORKDIR.value, "metrics.jsonl")}\ncurves: {curves}')


if __name__ == '__main__':
  app.run(main)
