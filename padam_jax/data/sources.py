"""Loading datasets into host-side uint8 numpy arrays (no network, ever).

Every loader returns a :class:`Dataset`: NHWC ``uint8`` images of 32x32x3,
``int32`` labels, and the per-channel mean/std (in [0, 1] pixel units) that
:func:`padam_jax.data.normalize` uses. Nothing is cached on disk here apart
from what tensorflow-datasets itself writes when it prepares a dataset.

Sources, by name:

* ``cifar10`` / ``cifar100``: a tensorflow-datasets copy that is already
  prepared in ``data_dir``; failing that, the official binary archive placed
  where tfds reads manually downloaded files
  (``<data_dir>/downloads/manual/cifar-10-binary.tar.gz``, or the archive
  directly in ``<data_dir>``), prepared offline; failing that,
  :class:`DatasetUnavailableError`. A download is never attempted.
* ``fashion_mnist``: the four original IDX files (gzipped or not) in
  ``data_dir`` (or, when ``data_dir`` is None, in
  ``/usr/share/datasets/fashion-mnist`` where Debian's
  ``dataset-fashion-mnist`` installs them); failing that, a prepared tfds copy.
* ``digits``: scikit-learn's bundled 8x8 handwritten digits (no download).
* ``synthetic``: random images and labels of CIFAR-10's shapes, made on the spot from a
  fixed seed; for throughput checks only (the labels are random: nothing generalises).

tensorflow, tensorflow-datasets and scikit-learn are imported inside the
functions that need them, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import os
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

import numpy as np

__all__ = [
  'CIFAR10_MEAN',
  'CIFAR10_STD',
  'CIFAR100_MEAN',
  'CIFAR100_STD',
  'DATASETS',
  'Dataset',
  'DatasetFormatError',
  'DatasetUnavailableError',
  'FASHION_MNIST_FILES',
  'FASHION_MNIST_SYSTEM_DIR',
  'cifar_archive_candidates',
  'load_dataset',
  'read_idx',
  'synthetic_dataset',
]

# The authors' normalisation constants (run_cnn_test_cifar10.py / _cifar100.py).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
CIFAR100_MEAN = (0.507, 0.487, 0.441)
CIFAR100_STD = (0.267, 0.256, 0.276)

# Where Debian's `dataset-fashion-mnist` package installs the IDX files.
FASHION_MNIST_SYSTEM_DIR = '/usr/share/datasets/fashion-mnist'
# The four original files, keyed by (split, kind).
FASHION_MNIST_FILES = {
  ('train', 'images'): 'train-images-idx3-ubyte',
  ('train', 'labels'): 'train-labels-idx1-ubyte',
  ('test', 'images'): 't10k-images-idx3-ubyte',
  ('test', 'labels'): 't10k-labels-idx1-ubyte',
}

# The archives tfds 4.9.x downloads for CIFAR (tensorflow_datasets/
# image_classification/cifar.py and url_checksums/cifar10.txt, cifar100.txt).
_CIFAR_ARCHIVES = {
  'cifar10': 'cifar-10-binary.tar.gz',
  'cifar100': 'cifar-100-binary.tar.gz',
}

# Digits: every 5th example of each class (by position within the class,
# positions 4, 9, 14, ...) is a test example; the rest are training examples.
# Deterministic without any random number generator: 1442 train / 355 test.
_DIGITS_TEST_EVERY = 5

IMAGE_SIZE = 32


class DatasetUnavailableError(RuntimeError):
  """The dataset is not available locally (and will not be downloaded)."""


class DatasetFormatError(DatasetUnavailableError):
  """A local dataset file exists but is corrupt or not in the expected format."""


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
  """A whole dataset held in host memory as uint8 images and int32 labels.

  Attributes:
    name: the name passed to :func:`load_dataset`.
    train_images: ``uint8[N, 32, 32, 3]`` training images (NHWC, RGB).
    train_labels: ``int32[N]`` training labels in ``[0, num_classes)``.
    test_images: ``uint8[M, 32, 32, 3]`` test images.
    test_labels: ``int32[M]`` test labels.
    num_classes: number of classes.
    mean: per-channel mean, in [0, 1] pixel units, used for normalisation.
    std: per-channel standard deviation, in [0, 1] pixel units.
    validation_images: ``uint8[V, 32, 32, 3]`` images held out of the training set for
      selection (:meth:`split_validation`); none (V = 0) unless asked for.
    validation_labels: ``int32[V]`` their labels.
  """

  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  validation_images: np.ndarray = dataclasses.field(
    default_factory=lambda: np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
  )
  validation_labels: np.ndarray = dataclasses.field(
    default_factory=lambda: np.zeros((0,), np.int32)
  )

  def __post_init__(self) -> None:
    for split in ('train', 'test', 'validation'):
      images = getattr(self, f'{split}_images')
      labels = getattr(self, f'{split}_labels')
      if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
          f'{self.name}: {split}_images must be uint8 [N, H, W, 3], got '
          f'{images.dtype} {images.shape}.'
        )
      if labels.dtype != np.int32 or labels.shape != images.shape[:1]:
        raise ValueError(
          f'{self.name}: {split}_labels must be int32 [{images.shape[0]}], '
          f'got {labels.dtype} {labels.shape}.'
        )
    if len(self.mean) != 3 or len(self.std) != 3:
      raise ValueError('mean and std must have 3 entries (one per channel).')

  @property
  def num_train(self) -> int:
    return int(self.train_images.shape[0])

  @property
  def num_test(self) -> int:
    return int(self.test_images.shape[0])

  @property
  def num_validation(self) -> int:
    return int(self.validation_images.shape[0])

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])

  def describe(self) -> str:
    """One line: name, split sizes, image shape, classes, mean and std."""
    h, w, c = self.image_shape

    def fmt(v: Sequence[float]) -> str:
      return '(' + ', '.join(f'{x:.4f}' for x in v) + ')'

    validation = f', validation {self.num_validation}' if self.num_validation else ''
    return (
      f'{self.name}: train {self.num_train}{validation}, test {self.num_test}, '
      f'{h}x{w}x{c} uint8, {self.num_classes} classes, '
      f'mean {fmt(self.mean)}, std {fmt(self.std)}'
    )

  def __repr__(self) -> str:
    return f'Dataset({self.describe()})'

  def split_validation(self, size: int | None) -> Dataset:
    """The last ``size`` training examples held out as a validation split (None or 0: as
    is), so that :meth:`subset`'s first training examples never include them.

    Idempotent for the same ``size``; a dataset that already holds a validation split of
    another size is refused. Normalisation statistics stay those of the whole training set
    (as every run before this split had them).
    """
    if not size or size == self.num_validation:
      return self
    if self.num_validation:
      raise ValueError(
        f'{self.name} already holds a validation split of {self.num_validation}, not {size}'
      )
    if not 1 <= size < self.num_train:
      raise ValueError(
        f'validation_size must lie in [1, {self.num_train - 1}] for {self.name} '
        f'({self.num_train} training examples), got {size}'
      )
    keep = self.num_train - size
    return dataclasses.replace(
      self,
      train_images=self.train_images[:keep],
      train_labels=self.train_labels[:keep],
      validation_images=self.train_images[keep:],
      validation_labels=self.train_labels[keep:],
    )

  def subset(self, train_size: int | None = None, test_size: int | None = None) -> Dataset:
    """The first ``train_size`` training and ``test_size`` test examples (None: all); a
    validation split is kept whole.

    Normalisation statistics stay those of the whole dataset.
    """
    sizes = {'train': train_size, 'test': test_size}
    for split, size in sizes.items():
      available = getattr(self, f'num_{split}')
      if size is not None and not 1 <= size <= available:
        held = (
          f' (the other {self.num_validation} are the validation split)'
          if split == 'train' and self.num_validation
          else ''
        )
        raise ValueError(
          f'{split}_size must lie in [1, {available}] for {self.name}{held}, got {size}'
        )
    cut = lambda x, size: x if size is None else x[:size]  # noqa: E731
    return dataclasses.replace(
      self,
      train_images=cut(self.train_images, train_size),
      train_labels=cut(self.train_labels, train_size),
      test_images=cut(self.test_images, test_size),
      test_labels=cut(self.test_labels, test_size),
    )


# --------------------------------------------------------------------------
# Helpers shared by the loaders.


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Exact per-channel mean and std of uint8 NHWC images, in [0, 1] units.

  Computed from a 256-bin histogram per channel, so it needs no float copy of
  the images.
  """
  values = np.arange(256, dtype=np.float64) / 255.0
  means, stds = [], []
  for c in range(images.shape[-1]):
    counts = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
    total = counts.sum()
    mean = float((counts * values).sum() / total)
    var = float((counts * (values - mean) ** 2).sum() / total)
    means.append(mean)
    stds.append(var**0.5)
  return tuple(means), tuple(stds)


def _gray_to_rgb32(images: np.ndarray) -> np.ndarray:
  """uint8 [N, H, W] with H, W <= 32 -> uint8 [N, 32, 32, 3], zero-padded."""
  n, h, w = images.shape
  top, left = (IMAGE_SIZE - h) // 2, (IMAGE_SIZE - w) // 2
  out = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
  out[:, top : top + h, left : left + w, :] = images[..., None]
  return out


def _import_tfds(name: str) -> types.ModuleType:
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise DatasetUnavailableError(
      f'Loading {name!r} needs tensorflow-datasets (pip install '
      f'"padam-jax[train]"), which could not be imported: {e}'
    ) from e
  return tfds


def _tfds_builder(tfds: types.ModuleType, name: str, data_dir: str | None) -> Any:
  """A tfds builder for `name`; construction itself never touches the network.

  (tfds 4.9.x keeps GCS access disabled, so a builder whose data is not
  prepared falls back to the metadata in its code.)
  """
  return tfds.builder(name, data_dir=data_dir)


def _tfds_split_to_numpy(
  tfds: types.ModuleType, builder: Any, split: str, batch_size: int = 10000
) -> tuple[np.ndarray, np.ndarray]:
  """Reads a whole prepared split as (uint8 images, int32 labels), in order."""
  ds = builder.as_dataset(
    split=split, as_supervised=True, shuffle_files=False, batch_size=batch_size
  )
  images, labels = [], []
  for x, y in tfds.as_numpy(ds):
    images.append(np.asarray(x, dtype=np.uint8))
    labels.append(np.asarray(y).astype(np.int32))
  if not images:
    raise DatasetUnavailableError(
      f'{builder.name}: split {split!r} in {builder.data_dir} is empty.'
    )
  return np.concatenate(images), np.concatenate(labels)


@contextlib.contextmanager
def _downloads_forbidden(name: str) -> Iterator[None]:
  """Makes any download attempt of the tfds download manager fail at once.

  Files found in the manual directory or the download cache are still used;
  only the step that would fetch a URL is replaced.
  """
  from tensorflow_datasets.core.download import download_manager as dm

  def refuse(self: Any, resource: Any) -> NoReturn:
    del self
    url = getattr(resource, 'url', resource)
    raise DatasetUnavailableError(
      f'{name}: tensorflow-datasets tried to download {url}; downloads are '
      'disabled here. ' + _cifar_remedy(name, None)
    )

  original = dm.DownloadManager._download
  dm.DownloadManager._download = refuse
  try:
    yield
  finally:
    dm.DownloadManager._download = original


# --------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 through tensorflow-datasets.


def cifar_archive_candidates(name: str, data_root: str) -> list[str]:
  """Where an official CIFAR archive is picked up for offline preparation.

  In order: ``<data_root>/downloads/manual/<archive>`` (tfds's own default
  ``manual_dir``, which its download manager checks before any download) and
  ``<data_root>/<archive>`` (passed to tfds as ``manual_dir``). ``data_root`` is
  ``--data_dir``, or tfds's default data directory (``~/tensorflow_datasets``
  unless ``TFDS_DATA_DIR`` is set).
  """
  archive = _CIFAR_ARCHIVES[name]
  return [
    os.path.join(data_root, 'downloads', 'manual', archive),
    os.path.join(data_root, archive),
  ]


def _cifar_remedy(name: str, data_root: str | None) -> str:
  root = data_root or '<data_dir>'
  archive = _CIFAR_ARCHIVES[name]
  places = ' or '.join(cifar_archive_candidates(name, root))
  return (
    f'Pass --data_dir=DIR pointing at a tensorflow-datasets data directory '
    f'that holds a prepared {name}. Remedies: (1) on a machine with internet '
    f'run `tfds build {name} --data_dir=DIR` (or `python -c "import '
    f"tensorflow_datasets as tfds; tfds.builder('{name}', data_dir='DIR')"
    f'.download_and_prepare()"`) and copy DIR (it contains {name}/) here; '
    f'or (2) place the official archive {archive} '
    f'(https://www.cs.toronto.edu/~kriz/{archive}) at {places}, and it '
    f'will be prepared offline on the next run.'
  )


def _prepare_cifar_offline(builder: Any, name: str, archive: str) -> None:
  """Runs tfds preparation from a locally placed archive, never downloading."""
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core.download import download_manager as dm

  config = tfds.download.DownloadConfig(manual_dir=os.path.dirname(archive), try_download_gcs=False)
  try:
    with _downloads_forbidden(name):
      builder.download_and_prepare(download_config=config)
  except dm.NonMatchingChecksumError as e:
    raise DatasetFormatError(
      f'{name}: {archive} is not the official {_CIFAR_ARCHIVES[name]} '
      f'(size/sha256 differ from the checksum tfds registers for it); '
      f'replace it with the file from https://www.cs.toronto.edu/~kriz/. '
      f'Details: {e}'
    ) from e


def _load_cifar(name: str, data_dir: str | None) -> Dataset:
  tfds = _import_tfds(name)
  builder = _tfds_builder(tfds, name, data_dir)
  if not builder.is_prepared():
    root = os.fspath(data_dir) if data_dir else os.fspath(builder.data_dir_root)
    found = [p for p in cifar_archive_candidates(name, root) if os.path.isfile(p)]
    if not found:
      raise DatasetUnavailableError(
        f'{name} is not prepared in {root} and downloads are disabled. ' + _cifar_remedy(name, root)
      )
    _prepare_cifar_offline(builder, name, found[0])
  train_x, train_y = _tfds_split_to_numpy(tfds, builder, 'train')
  test_x, test_y = _tfds_split_to_numpy(tfds, builder, 'test')
  mean, std = (CIFAR10_MEAN, CIFAR10_STD) if name == 'cifar10' else (CIFAR100_MEAN, CIFAR100_STD)
  return Dataset(
    name=name,
    train_images=train_x,
    train_labels=train_y,
    test_images=test_x,
    test_labels=test_y,
    num_classes=10 if name == 'cifar10' else 100,
    mean=mean,
    std=std,
  )


def _load_cifar10(data_dir: str | None) -> Dataset:
  return _load_cifar('cifar10', data_dir)


def _load_cifar100(data_dir: str | None) -> Dataset:
  return _load_cifar('cifar100', data_dir)


# --------------------------------------------------------------------------
# Fashion-MNIST: the original IDX files, or a prepared tfds copy.

_IDX_UBYTE = 0x08


def read_idx(path: str, expected_dims: Sequence[int | None]) -> np.ndarray:
  """Parses an IDX file of unsigned bytes (``.gz`` or uncompressed).

  Args:
    path: the file.
    expected_dims: the expected shape; ``None`` entries match any size (use it
      for the example count). Its length is the expected number of dimensions.

  Returns:
    A uint8 array of the stored shape.

  Raises:
    DatasetFormatError: the file is unreadable, truncated, not gzip despite its
      name, has a wrong magic number, or an unexpected shape.
  """
  try:
    if path.endswith('.gz'):
      with gzip.open(path, 'rb') as f:
        raw = f.read()
    else:
      with open(path, 'rb') as f:
        raw = f.read()
  except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError.
    raise DatasetFormatError(f'Cannot read IDX file {path}: {e}') from e
  ndim = len(expected_dims)
  if len(raw) < 4:
    raise DatasetFormatError(f'{path}: too short ({len(raw)} bytes) for an IDX file.')
  if raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE or raw[3] != ndim:
    raise DatasetFormatError(
      f'{path}: bad IDX magic number 0x{raw[:4].hex()}, expected '
      f'0x{_IDX_UBYTE << 8 | ndim:08x} (unsigned bytes, {ndim} dimensions).'
    )
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DatasetFormatError(f'{path}: truncated IDX header.')
  dims = tuple(int(d) for d in np.frombuffer(raw, dtype='>u4', count=ndim, offset=4))
  for got, want in zip(dims, expected_dims, strict=True):
    if want is not None and got != want:
      raise DatasetFormatError(f'{path}: IDX dimensions {dims}, expected {tuple(expected_dims)}.')
  size = int(np.prod(dims))
  if len(raw) != header + size:
    raise DatasetFormatError(
      f'{path}: {len(raw) - header} data bytes, but dimensions {dims} need '
      f'{size} (file truncated or padded).'
    )
  return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _find_idx_files(directory: str) -> dict[tuple[str, str], str] | None:
  """The four Fashion-MNIST files in `directory` (or its fashion[-_]mnist/).

  Returns None when none is present; raises if only some are.
  """
  for d in (
    directory,
    os.path.join(directory, 'fashion-mnist'),
    os.path.join(directory, 'fashion_mnist'),
  ):
    found, missing = {}, []
    for key, stem in FASHION_MNIST_FILES.items():
      for fname in (stem + '.gz', stem):
        if os.path.isfile(os.path.join(d, fname)):
          found[key] = os.path.join(d, fname)
          break
      else:
        missing.append(stem + '[.gz]')
    if len(found) == len(FASHION_MNIST_FILES):
      return found
    if found:
      raise DatasetUnavailableError(
        f'fashion_mnist: {d} holds only some of the IDX files; missing {", ".join(missing)}.'
      )
  return None


def _fashion_mnist_from_idx(files: dict[tuple[str, str], str]) -> Dataset:
  arrays = {}
  for split in ('train', 'test'):
    images = read_idx(files[(split, 'images')], (None, 28, 28))
    labels = read_idx(files[(split, 'labels')], (None,))
    if images.shape[0] != labels.shape[0]:
      raise DatasetFormatError(
        f'fashion_mnist {split}: {images.shape[0]} images in '
        f'{files[(split, "images")]} but {labels.shape[0]} labels in '
        f'{files[(split, "labels")]}.'
      )
    if labels.size and labels.max() >= 10:
      raise DatasetFormatError(
        f'{files[(split, "labels")]}: label {int(labels.max())} out of range [0, 10).'
      )
    arrays[split] = (images, labels.astype(np.int32))
  return _fashion_mnist_dataset(arrays)


def _fashion_mnist_dataset(arrays: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Dataset:
  """28x28 grayscale -> zero-padded 32x32x3; mean/std of the padded train set."""
  train_x = _gray_to_rgb32(arrays['train'][0])
  test_x = _gray_to_rgb32(arrays['test'][0])
  mean, std = _channel_stats(train_x)
  return Dataset(
    name='fashion_mnist',
    train_images=train_x,
    train_labels=arrays['train'][1],
    test_images=test_x,
    test_labels=arrays['test'][1],
    num_classes=10,
    mean=mean,
    std=std,
  )


def _load_fashion_mnist(data_dir: str | None) -> Dataset:
  idx_dir = os.fspath(data_dir) if data_dir else FASHION_MNIST_SYSTEM_DIR
  if os.path.isdir(idx_dir):
    files = _find_idx_files(idx_dir)
    if files is not None:
      return _fashion_mnist_from_idx(files)

  tfds_error = ''
  try:
    tfds = _import_tfds('fashion_mnist')
    builder = _tfds_builder(tfds, 'fashion_mnist', data_dir)
    if builder.is_prepared():
      arrays = {}
      for split in ('train', 'test'):
        x, y = _tfds_split_to_numpy(tfds, builder, split)
        arrays[split] = (x[..., 0], y)
      return _fashion_mnist_dataset(arrays)
    tfds_error = f'tfds fashion_mnist is not prepared in {builder.data_dir_root}'
  except DatasetFormatError:
    raise
  except DatasetUnavailableError as e:
    tfds_error = str(e)

  names = ', '.join(s + '.gz' for s in FASHION_MNIST_FILES.values())
  hint = ''
  if data_dir and _find_idx_files_quietly(FASHION_MNIST_SYSTEM_DIR):
    hint = (
      f' The files are installed in {FASHION_MNIST_SYSTEM_DIR}: pass '
      f'--data_dir={FASHION_MNIST_SYSTEM_DIR}.'
    )
  raise DatasetUnavailableError(
    f'fashion_mnist not found: no IDX files in {idx_dir} and {tfds_error}. '
    f'Remedies: put the four files {names} (gzipped or not) in a directory '
    f'and pass --data_dir=DIR; or `apt-get install dataset-fashion-mnist` '
    f'(installs them in {FASHION_MNIST_SYSTEM_DIR}, used when --data_dir is '
    f'not given); or prepare it with tfds on a machine with internet '
    f'(`tfds build fashion_mnist --data_dir=DIR`) and copy DIR here.' + hint
  )


def _find_idx_files_quietly(directory: str) -> bool:
  try:
    return os.path.isdir(directory) and _find_idx_files(directory) is not None
  except DatasetUnavailableError:
    return False


# --------------------------------------------------------------------------
# scikit-learn's bundled 8x8 digits.


def _digits_split(labels: np.ndarray) -> np.ndarray:
  """Boolean test mask: positions 4, 9, 14, ... within each class."""
  is_test = np.zeros(labels.shape, dtype=bool)
  for c in np.unique(labels):
    where = np.flatnonzero(labels == c)
    is_test[where[_DIGITS_TEST_EVERY - 1 :: _DIGITS_TEST_EVERY]] = True
  return is_test


def _load_digits(data_dir: str | None) -> Dataset:
  """scikit-learn's 1797 8x8 digits (values 0..16) as 32x32x3 uint8.

  Pixels are scaled by 255/16 and rounded; images are upscaled 4x with
  nearest-neighbour (each pixel becomes a 4x4 block) and replicated to three
  channels. The split is fixed and stratified: within each class, every 5th
  example in file order is a test example (1442 train / 355 test). Mean/std
  come from the training set. `data_dir` is ignored (the data ship with
  scikit-learn).
  """
  del data_dir
  try:
    from sklearn.datasets import load_digits
  except ImportError as e:
    raise DatasetUnavailableError(
      f'digits needs scikit-learn (pip install scikit-learn): {e}'
    ) from e
  bunch = load_digits()
  small = np.rint(np.asarray(bunch.images, np.float64) * (255.0 / 16.0))
  small = np.clip(small, 0, 255).astype(np.uint8)
  scale = IMAGE_SIZE // small.shape[1]
  big = np.repeat(np.repeat(small, scale, axis=1), scale, axis=2)
  images = np.repeat(big[..., None], 3, axis=-1)
  labels = np.asarray(bunch.target, dtype=np.int32)
  is_test = _digits_split(labels)
  train_x, test_x = images[~is_test], images[is_test]
  mean, std = _channel_stats(train_x)
  return Dataset(
    name='digits',
    train_images=train_x,
    train_labels=labels[~is_test],
    test_images=test_x,
    test_labels=labels[is_test],
    num_classes=10,
    mean=mean,
    std=std,
  )


# --------------------------------------------------------------------------
# Random data of CIFAR-10's shapes, for timing.


def synthetic_dataset(num_train: int = 50_000, num_test: int = 10_000, seed: int = 0) -> Dataset:
  """Uniformly random uint8 32x32x3 images and labels of 10 classes (CIFAR-10's shapes).

  The same ``seed`` gives the same arrays. Throughput only: the labels are random, so
  test error stays near 90%. Normalised with CIFAR-10's mean and std.
  """
  rng = np.random.default_rng(seed)

  def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    return (
      rng.integers(0, 256, (n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8),
      rng.integers(0, 10, n, dtype=np.int32),
    )

  (train_x, train_y), (test_x, test_y) = split(num_train), split(num_test)
  return Dataset(
    name='synthetic',
    train_images=train_x,
    train_labels=train_y,
    test_images=test_x,
    test_labels=test_y,
    num_classes=10,
    mean=CIFAR10_MEAN,
    std=CIFAR10_STD,
  )


def _load_synthetic(data_dir: str | None) -> Dataset:
  del data_dir  # made on the spot
  return synthetic_dataset()


# --------------------------------------------------------------------------

DATASETS: dict[str, Callable[[str | None], Dataset]] = {
  'cifar10': _load_cifar10,
  'cifar100': _load_cifar100,
  'fashion_mnist': _load_fashion_mnist,
  'digits': _load_digits,
  'synthetic': _load_synthetic,
}


def load_dataset(name: str, data_dir: str | None = None) -> Dataset:
  """Loads a dataset into host memory as uint8 NHWC arrays, never downloading.

  Args:
    name: one of ``cifar10``, ``cifar100``, ``fashion_mnist``, ``digits``,
      ``synthetic`` (random, for timing).
    data_dir: where to look for the data (the ``--data_dir`` flag): a
      tensorflow-datasets data directory for CIFAR (default: tfds's own), or
      the directory holding the Fashion-MNIST IDX files. Ignored for digits.

  Returns:
    A :class:`Dataset` with 32x32x3 uint8 images and int32 labels.

  Raises:
    ValueError: unknown name.
    DatasetUnavailableError: the data are not available locally; the message
      says how to make them available. :class:`DatasetFormatError` (a
      subclass) when a local file is corrupt.

  Example::

    ds = load_dataset('digits')
    print(ds)  # Dataset(digits: train 1442, test 355, 32x32x3 uint8, ...)
  """
  try:
    loader = DATASETS[name]
  except KeyError:
    raise ValueError(f'Unknown dataset {name!r}; choose one of {sorted(DATASETS)}.') from None
  return loader(None if data_dir is None else os.fspath(data_dir))
