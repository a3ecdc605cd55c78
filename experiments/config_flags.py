"""The flags of one run's configuration (``experiments.train`` and ``experiments.sweep``)."""

from absl import flags

from padam_jax.training import config as config_lib
from padam_jax.alias import OPTIMIZERS
from padam_jax.data import DATASETS
from padam_jax.models import MODELS

_MODEL = flags.DEFINE_enum('model', 'resnet18', sorted(MODELS), 'Architecture.')
_WIDTH = flags.DEFINE_float('width', 1.0, 'Channel multiplier (1 = the paper\'s model).')
_DATASET = flags.DEFINE_enum('dataset', 'cifar10', sorted(DATASETS), 'Dataset.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'tfds data dir, or the folder of '
                                'the Fashion-MNIST IDX files.')
_TRAIN_SIZE = flags.DEFINE_integer('train_size', None, 'Train on the first N training '
                                   'examples only (default: all).')
_TEST_SIZE = flags.DEFINE_integer('test_size', None, 'Evaluate on the first N test '
                                  'examples only (default: all).')
_OPTIMIZER = flags.DEFINE_enum('optimizer', 'padam', sorted(OPTIMIZERS), 'Optimizer.')
_PRESET = flags.DEFINE_enum('preset', 'seed', sorted(config_lib.PRESETS),
                             config_lib.PRESET_HELP)
_LR = flags.DEFINE_float('lr', None, 'Learning rate (default: the seed\'s Table 1: '
                         '0.1 for padam/padamw/sgdm, 0.001 for adam/amsgrad/adamw).')
_LR_START = flags.DEFINE_float('lr_start', None, 'With --lr_schedule warmup: the learning '
                               'rate rises linearly from this to --lr over the run.')
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
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of init, shuffling and augmentation.')



def config_from_flags() -> config_lib.TrainConfig:
  """The (unresolved) run configuration the flags describe."""
  return config_lib.TrainConfig(
      model=_MODEL.value, width=_WIDTH.value, dataset=_DATASET.value,
      data_dir=_DATA_DIR.value, optimizer=_OPTIMIZER.value, preset=_PRESET.value,
      learning_rate=_LR.value, lr_start=_LR_START.value, partial=_PARTIAL.value,
      partial_end=_PARTIAL_END.value, weight_decay=_WEIGHT_DECAY.value,
      epochs=_EPOCHS.value, batch_size=_BATCH_SIZE.value, lr_schedule=_LR_SCHEDULE.value,
      drop_remainder=_DROP_REMAINDER.value, seed=_SEED.value,
      compute_dtype=_COMPUTE_DTYPE.value, train_size=_TRAIN_SIZE.value,
      test_size=_TEST_SIZE.value)


def explicit_flags() -> set[str]:
  """Names of the configuration flags given on the command line."""
  return {name for name in flags.FLAGS if flags.FLAGS[name].present}
