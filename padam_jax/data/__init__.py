"""Datasets as uint8 arrays (host) and on-device augmentation and batching."""

from padam_jax.data.augment import (
  augment,
  epoch_batches,
  eval_batches,
  normalize,
  num_batches,
  random_crop_flip,
)
from padam_jax.data.sources import (
  CIFAR10_MEAN,
  CIFAR10_STD,
  CIFAR100_MEAN,
  CIFAR100_STD,
  DATASETS,
  Dataset,
  DatasetFormatError,
  DatasetUnavailableError,
  cifar_archive_candidates,
  load_dataset,
  synthetic_dataset,
)

__all__ = [
  'CIFAR10_MEAN',
  'CIFAR10_STD',
  'CIFAR100_MEAN',
  'CIFAR100_STD',
  'DATASETS',
  'Dataset',
  'DatasetFormatError',
  'DatasetUnavailableError',
  'augment',
  'cifar_archive_candidates',
  'epoch_batches',
  'eval_batches',
  'load_dataset',
  'normalize',
  'num_batches',
  'random_crop_flip',
  'synthetic_dataset',
]
