"""Tests for padam_jax.data: dataset loading (offline only) and augmentation."""

import gzip
import io
import os
import socket
import tarfile
import time
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_python

from padam_jax import data
from padam_jax.data import sources

CIFAR10_LABELS = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
]


@pytest.fixture
def no_network(monkeypatch):
  """Any attempt to open a network connection fails immediately."""

  def refuse(*args, **kwargs):
    raise AssertionError(f'network access attempted: {args!r}')

  monkeypatch.setattr(socket.socket, 'connect', refuse)
  monkeypatch.setattr(socket.socket, 'connect_ex', refuse)
  monkeypatch.setattr(socket, 'create_connection', refuse)
  monkeypatch.setattr(socket, 'getaddrinfo', refuse)


def test_import_is_light():
  """``import padam_jax`` (the optimizer) needs jax, optax and chex alone; the data
  package loads tensorflow and scikit-learn only for the datasets that need them."""
  code = (
    'import sys\n'
    'def heavy(names): return [m for m in names if m in sys.modules]\n'
    'import padam_jax\n'
    'found = heavy(("flax", "orbax", "tensorflow", "torch"))\n'
    'assert not found, found\n'
    'import padam_jax.data\n'
    'found = heavy(("tensorflow", "tensorflow_datasets", "sklearn"))\n'
    'assert not found, found\n'
  )
  result = run_python('-c', code)
  assert result.returncode == 0, result.stderr[-2000:]


def test_unknown_name_lists_choices():
  with pytest.raises(ValueError, match='cifar10.*digits|digits.*cifar10'):
    data.load_dataset('imagenet')


# --------------------------------------------------------------------------
# CIFAR through tensorflow-datasets.


@pytest.mark.parametrize(
  'name,classes,mean,std',
  [
    ('cifar10', 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    ('cifar100', 100, (0.507, 0.487, 0.441), (0.267, 0.256, 0.276)),
  ],
)
def test_cifar_prepared_through_mock_data(name, classes, mean, std, tmp_path, no_network):
  tfds = pytest.importorskip('tensorflow_datasets')
  # mock_data replaces the builder's data and data_dir; it leaves
  # `is_prepared` alone, so declare the (mocked) data prepared.
  with (
    tfds.testing.mock_data(num_examples=23),
    mock.patch.object(tfds.core.DatasetBuilder, 'is_prepared', return_value=True),
  ):
    ds = data.load_dataset(name, data_dir=str(tmp_path))
  assert ds.name == name and ds.num_classes == classes
  assert ds.train_images.shape == (23, 32, 32, 3)
  assert ds.test_images.shape == (23, 32, 32, 3)
  assert ds.train_images.dtype == np.uint8 and ds.test_images.dtype == np.uint8
  assert ds.train_labels.dtype == np.int32 and ds.test_labels.dtype == np.int32
  for labels in (ds.train_labels, ds.test_labels):
    assert labels.min() >= 0 and labels.max() < classes
  assert ds.mean == mean and ds.std == std
  assert len(repr(ds)) < 200 and name in repr(ds)


def test_cifar_unprepared_fails_fast_without_network(tmp_path, no_network):
  pytest.importorskip('tensorflow_datasets')
  start = time.monotonic()
  with pytest.raises(data.DatasetUnavailableError) as info:
    data.load_dataset('cifar10', data_dir=str(tmp_path))
  assert time.monotonic() - start < 30
  message = str(info.value)
  assert '--data_dir' in message
  assert 'tfds build cifar10' in message
  assert os.path.join(str(tmp_path), 'downloads', 'manual', 'cifar-10-binary.tar.gz') in message
  assert not (tmp_path / 'cifar10').exists()  # nothing prepared, nothing left


def test_download_guard_refuses_instead_of_downloading(tmp_path, no_network):
  tfds = pytest.importorskip('tensorflow_datasets')
  builder = tfds.builder('cifar10', data_dir=str(tmp_path))
  missing = tmp_path / 'elsewhere' / 'cifar-10-binary.tar.gz'
  start = time.monotonic()
  with pytest.raises(data.DatasetUnavailableError, match='downloads are disabled'):
    sources._prepare_cifar_offline(builder, 'cifar10', str(missing))
  assert time.monotonic() - start < 30
  assert not builder.is_prepared()


def _write_fake_cifar10_archive(path, per_file=3):
  """A tiny archive laid out as the official cifar-10-binary.tar.gz.

  Record k has label k % 10 and constant colour planes R = k, G = 100 + k,
  B = 200 - k (the binary format stores planes, channel-first).
  """
  members, k = {}, 0
  for fname in [f'data_batch_{i}.bin' for i in range(1, 6)] + ['test_batch.bin']:
    records = []
    for _ in range(per_file):
      planes = np.stack([np.full((32, 32), v, np.uint8) for v in (k, 100 + k, 200 - k)])
      records.append(bytes([k % 10]) + planes.tobytes())
      k += 1
    members['cifar-10-batches-bin/' + fname] = b''.join(records)
  members['cifar-10-batches-bin/batches.meta.txt'] = ('\n'.join(CIFAR10_LABELS) + '\n').encode()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with tarfile.open(path, 'w:gz') as tar:
    for name, payload in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(payload)
      tar.addfile(info, io.BytesIO(payload))


def test_cifar_archive_with_wrong_checksum_is_reported(tmp_path, no_network):
  pytest.importorskip('tensorflow_datasets')
  archive = tmp_path / 'downloads' / 'manual' / 'cifar-10-binary.tar.gz'
  _write_fake_cifar10_archive(str(archive))
  with pytest.raises(data.DatasetFormatError, match='not the official'):
    data.load_dataset('cifar10', data_dir=str(tmp_path))


@pytest.mark.parametrize('place', ['manual', 'root'])
def test_cifar_prepared_offline_from_placed_archive(place, tmp_path, no_network):
  pytest.importorskip('tensorflow_datasets')
  from tensorflow_datasets.core.download import download_manager as dm

  paths = data.cifar_archive_candidates('cifar10', str(tmp_path))
  assert paths[0] == os.path.join(str(tmp_path), 'downloads', 'manual', 'cifar-10-binary.tar.gz')
  assert paths[1] == os.path.join(str(tmp_path), 'cifar-10-binary.tar.gz')
  _write_fake_cifar10_archive(paths[0] if place == 'manual' else paths[1])
  # The fake archive cannot match the registered sha256 of the real one.
  with mock.patch.object(
    dm.DownloadManager, '_register_or_validate_checksums', lambda *args, **kwargs: None
  ):
    ds = data.load_dataset('cifar10', data_dir=str(tmp_path))
  assert ds.num_train == 15 and ds.num_test == 3
  images = np.concatenate([ds.train_images, ds.test_images])
  labels = np.concatenate([ds.train_labels, ds.test_labels])
  k = images[:, 0, 0, 0].astype(int)  # tfds stores examples in its own order
  assert sorted(k[:15]) == list(range(15)) and sorted(k[15:]) == [15, 16, 17]
  np.testing.assert_array_equal(labels, k % 10)
  planes = np.broadcast_to(np.stack([k, 100 + k, 200 - k], -1)[:, None, None], images.shape)
  np.testing.assert_array_equal(images, planes)
  assert (tmp_path / 'cifar10').is_dir()
  # Now prepared: loads again without the archive.
  os.remove(paths[0] if place == 'manual' else paths[1])
  again = data.load_dataset('cifar10', data_dir=str(tmp_path))
  np.testing.assert_array_equal(again.train_images, ds.train_images)


# --------------------------------------------------------------------------
# Fashion-MNIST from IDX files.


def _idx_bytes(array, magic=None):
  array = np.asarray(array, np.uint8)
  if magic is None:
    magic = 0x0800 | array.ndim
  header = np.array([magic, *array.shape], dtype='>u4').tobytes()
  return header + array.tobytes()


def _write_fashion(directory, n_train=12, n_test=5, gz=True, seed=0):
  rng = np.random.default_rng(seed)
  arrays = {
    'train-images-idx3-ubyte': rng.integers(0, 256, (n_train, 28, 28)),
    'train-labels-idx1-ubyte': np.arange(n_train) % 10,
    't10k-images-idx3-ubyte': rng.integers(0, 256, (n_test, 28, 28)),
    't10k-labels-idx1-ubyte': (np.arange(n_test) * 3) % 10,
  }
  os.makedirs(directory, exist_ok=True)
  for stem, array in arrays.items():
    payload = _idx_bytes(array)
    if gz:
      with gzip.open(os.path.join(directory, stem + '.gz'), 'wb') as f:
        f.write(payload)
    else:
      with open(os.path.join(directory, stem), 'wb') as f:
        f.write(payload)
  return {k: np.asarray(v, np.uint8) for k, v in arrays.items()}


@pytest.mark.parametrize('gz', [True, False])
def test_fashion_mnist_from_idx(gz, tmp_path):
  raw = _write_fashion(str(tmp_path), gz=gz)
  ds = data.load_dataset('fashion_mnist', data_dir=str(tmp_path))
  assert ds.train_images.shape == (12, 32, 32, 3)
  assert ds.test_images.shape == (5, 32, 32, 3)
  assert ds.train_labels.dtype == np.int32 and ds.num_classes == 10
  np.testing.assert_array_equal(ds.train_labels, np.arange(12) % 10)
  # 2 pixels of zero padding on every side, the original in the middle.
  np.testing.assert_array_equal(ds.train_images[:, 2:30, 2:30, 0], raw['train-images-idx3-ubyte'])
  np.testing.assert_array_equal(ds.test_images[:, 2:30, 2:30, 0], raw['t10k-images-idx3-ubyte'])
  border = np.ones((32, 32), bool)
  border[2:30, 2:30] = False
  assert not ds.train_images[:, border].any()
  # Grayscale replicated to three channels.
  np.testing.assert_array_equal(ds.train_images[..., 0], ds.train_images[..., 1])
  np.testing.assert_array_equal(ds.train_images[..., 0], ds.train_images[..., 2])
  # Mean/std over the padded training images, in [0, 1] units.
  x = ds.train_images[..., 0].astype(np.float64) / 255
  np.testing.assert_allclose(ds.mean, [x.mean()] * 3, rtol=1e-12)
  np.testing.assert_allclose(ds.std, [x.std()] * 3, rtol=1e-12)


def test_fashion_mnist_idx_in_subfolder(tmp_path):
  _write_fashion(str(tmp_path / 'fashion-mnist'))
  assert data.load_dataset('fashion_mnist', str(tmp_path)).num_train == 12


@pytest.mark.parametrize(
  'corruption,match',
  [
    ('magic', 'magic number'),
    ('truncated', 'truncated|data bytes'),
    ('not_gzip', 'Cannot read'),
    ('wrong_dims', 'dimensions'),
  ],
)
def test_fashion_mnist_corrupt_file(corruption, match, tmp_path):
  _write_fashion(str(tmp_path))
  path = str(tmp_path / 'train-images-idx3-ubyte.gz')
  images = np.zeros((12, 28, 28), np.uint8)
  if corruption == 'magic':
    payload = _idx_bytes(images, magic=0x0801)
  elif corruption == 'truncated':
    payload = _idx_bytes(images)[:-100]
  elif corruption == 'wrong_dims':
    payload = _idx_bytes(np.zeros((12, 27, 28), np.uint8))
  if corruption == 'not_gzip':
    with open(path, 'wb') as f:
      f.write(b'this is not gzip data at all')
  else:
    with gzip.open(path, 'wb') as f:
      f.write(payload)
  with pytest.raises(data.DatasetFormatError, match=match) as info:
    data.load_dataset('fashion_mnist', data_dir=str(tmp_path))
  assert 'train-images-idx3-ubyte.gz' in str(info.value)


def test_fashion_mnist_label_count_mismatch(tmp_path):
  _write_fashion(str(tmp_path))
  with gzip.open(str(tmp_path / 'train-labels-idx1-ubyte.gz'), 'wb') as f:
    f.write(_idx_bytes(np.zeros(11, np.uint8)))
  with pytest.raises(data.DatasetFormatError, match='12 images.*11 labels'):
    data.load_dataset('fashion_mnist', data_dir=str(tmp_path))


def test_fashion_mnist_partial_files(tmp_path):
  _write_fashion(str(tmp_path))
  os.remove(str(tmp_path / 't10k-labels-idx1-ubyte.gz'))
  with pytest.raises(data.DatasetUnavailableError, match='t10k-labels-idx1-ubyte'):
    data.load_dataset('fashion_mnist', data_dir=str(tmp_path))


def test_fashion_mnist_missing_explains_remedies(tmp_path, no_network):
  start = time.monotonic()
  with pytest.raises(data.DatasetUnavailableError) as info:
    data.load_dataset('fashion_mnist', data_dir=str(tmp_path))
  assert time.monotonic() - start < 30
  message = str(info.value)
  for needle in (
    '--data_dir',
    'apt-get install dataset-fashion-mnist',
    'tfds',
    'train-images-idx3-ubyte',
    'train-labels-idx1-ubyte',
    't10k-images-idx3-ubyte',
    't10k-labels-idx1-ubyte',
  ):
    assert needle in message
  if os.path.isdir(data.sources.FASHION_MNIST_SYSTEM_DIR):
    assert f'--data_dir={data.sources.FASHION_MNIST_SYSTEM_DIR}' in message


def test_fashion_mnist_falls_back_to_prepared_tfds(tmp_path, no_network):
  tfds = pytest.importorskip('tensorflow_datasets')
  with (
    tfds.testing.mock_data(num_examples=7),
    mock.patch.object(tfds.core.DatasetBuilder, 'is_prepared', return_value=True),
  ):
    ds = data.load_dataset('fashion_mnist', data_dir=str(tmp_path))
  assert ds.train_images.shape == ds.test_images.shape == (7, 32, 32, 3)
  assert not ds.train_images[:, :2].any() and not ds.train_images[:, :, 30:].any()
  np.testing.assert_array_equal(ds.train_images[..., 0], ds.train_images[..., 1])
  assert ds.train_labels.dtype == np.int32 and ds.train_labels.max() < 10


@pytest.mark.skipif(
  not os.path.isdir(data.sources.FASHION_MNIST_SYSTEM_DIR),
  reason='Debian package dataset-fashion-mnist not installed',
)
def test_fashion_mnist_real_system_files():
  ds = data.load_dataset('fashion_mnist')
  assert ds.train_images.shape == (60000, 32, 32, 3)
  assert ds.test_images.shape == (10000, 32, 32, 3)
  np.testing.assert_array_equal(np.bincount(ds.train_labels), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(ds.test_labels), [1000] * 10)
  assert not ds.train_images[:, :2].any() and not ds.train_images[:, 30:].any()
  # Known statistics of the unpadded set (0.2860 / 0.3530), diluted by padding.
  assert ds.mean[0] == pytest.approx(0.2860 * 784 / 1024, abs=1e-3)
  assert ds.mean[0] == pytest.approx(0.2190, abs=1e-4)
  assert ds.std[0] == pytest.approx(0.3318, abs=1e-4)


# --------------------------------------------------------------------------
# scikit-learn digits.


@pytest.fixture(scope='module')
def digits():
  pytest.importorskip('sklearn')
  return data.load_dataset('digits')


def test_digits_sizes_and_range(digits):
  assert digits.num_train == 1442 and digits.num_test == 355
  assert digits.train_images.shape == (1442, 32, 32, 3)
  assert digits.train_images.dtype == np.uint8
  assert digits.train_images.min() == 0 and digits.train_images.max() == 255
  np.testing.assert_array_equal(
    np.bincount(digits.test_labels),
    np.bincount(np.concatenate([digits.train_labels, digits.test_labels])) // 5,
  )
  # 4x nearest-neighbour upscaling: constant 4x4 blocks; channels identical.
  x = digits.train_images[..., 0]
  np.testing.assert_array_equal(x, np.repeat(np.repeat(x[:, ::4, ::4], 4, 1), 4, 2))
  np.testing.assert_array_equal(digits.train_images[..., 0], digits.train_images[..., 2])
  np.testing.assert_allclose(digits.mean, [x.astype(np.float64).mean() / 255] * 3, rtol=1e-12)


def test_digits_split_is_deterministic(digits):
  again = data.load_dataset('digits')
  np.testing.assert_array_equal(again.train_images, digits.train_images)
  np.testing.assert_array_equal(again.test_labels, digits.test_labels)
  assert again.mean == digits.mean and again.std == digits.std


def test_digits_are_real_images(digits):
  x = digits.train_images[..., 0].reshape(digits.num_train, -1) / 255.0
  means = np.stack([x[digits.train_labels == c].mean(0) for c in range(10)])
  distances = np.linalg.norm(means[:, None] - means[None], axis=-1)
  assert distances[~np.eye(10, dtype=bool)].min() > 1.0
  # A nearest-class-mean classifier already works on the held-out split.
  t = digits.test_images[..., 0].reshape(digits.num_test, -1) / 255.0
  predicted = np.argmin(np.linalg.norm(t[:, None] - means[None], axis=-1), 1)
  assert (predicted == digits.test_labels).mean() > 0.8


# --------------------------------------------------------------------------
# Augmentation.


def _pattern(n, size=32):
  """Images with no zero pixel whose every pixel is distinct per image."""
  base = 1 + (np.arange(size * size * 3).reshape(size, size, 3) % 251)
  return np.stack([np.roll(base, i, axis=2) for i in range(n)]).astype(np.uint8)


def _match(padded, out, padding):
  """(dy, dx, flipped) such that out is that window of padded, else None."""
  h, w = out.shape[:2]
  for dy in range(2 * padding + 1):
    for dx in range(2 * padding + 1):
      window = padded[dy : dy + h, dx : dx + w]
      if np.array_equal(window, out):
        return dy, dx, False
      if np.array_equal(window[:, ::-1], out):
        return dy, dx, True
  return None


def test_random_crop_flip_is_a_shifted_window_of_the_zero_padded_image():
  images = _pattern(64)
  out = np.asarray(jax.jit(data.random_crop_flip)(jax.random.key(0), images))
  assert out.shape == images.shape and out.dtype == np.uint8
  padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
  found = [_match(p, o, 4) for p, o in zip(padded, out, strict=True)]
  assert all(f is not None for f in found)
  offsets = {(dy, dx) for dy, dx, _ in found}
  assert len(offsets) > 20  # many different shifts out of 81
  # Off-centre crops show the zero padding as pixel value 0 (raw image has none).
  assert (images > 0).all()
  shifted = [i for i, (dy, dx, _) in enumerate(found) if (dy, dx) != (4, 4)]
  assert shifted and all((out[i] == 0).any() for i in shifted)


def test_flip_is_an_exact_mirror_with_probability_half():
  images = _pattern(2000, size=8)
  out = np.asarray(data.random_crop_flip(jax.random.key(1), images, padding=0))
  same = np.all(out == images, axis=(1, 2, 3))
  mirrored = np.all(out == images[:, :, ::-1], axis=(1, 2, 3))
  assert np.all(same ^ mirrored)
  assert 0.45 < mirrored.mean() < 0.55


def test_augment_is_deterministic_and_normalises():
  images = _pattern(16)
  mean, std = data.CIFAR10_MEAN, data.CIFAR10_STD
  a = data.augment(jax.random.key(3), images, mean, std)
  b = data.augment(jax.random.key(3), images, mean, std)
  c = data.augment(jax.random.key(4), images, mean, std)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert a.dtype == jnp.float32 and a.shape == images.shape
  cropped = data.random_crop_flip(jax.random.key(3), images)
  np.testing.assert_allclose(a, data.normalize(cropped, mean, std), rtol=1e-6)
  # Zero padding becomes -mean/std after normalisation.
  zero = np.asarray(data.normalize(np.zeros((1, 1, 1, 3), np.uint8), mean, std))
  np.testing.assert_allclose(zero[0, 0, 0], -np.array(mean) / np.array(std), rtol=1e-6)


def test_normalize_values_and_dtype():
  x = np.array([[[[0, 128, 255]]]], np.uint8)
  y = data.normalize(x, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0), dtype=jnp.bfloat16)
  assert y.dtype == jnp.bfloat16
  np.testing.assert_allclose(
    np.asarray(y, np.float32)[0, 0, 0], [(0 - 0.5) / 0.25, (128 / 255 - 0.5) / 0.5, 0.5], rtol=1e-2
  )


# --------------------------------------------------------------------------
# Batch plans.


def test_num_batches():
  assert data.num_batches(50000, 128, drop_remainder=False) == 391
  assert data.num_batches(50000, 128, drop_remainder=True) == 390
  assert data.num_batches(10000, 100, drop_remainder=False) == 100
  with pytest.raises(ValueError):
    data.num_batches(0, 128, drop_remainder=False)


def test_epoch_batches_keep_last():
  idx, mask = data.epoch_batches(jax.random.key(0), 50000, 128, drop_remainder=False)
  idx, mask = np.asarray(idx), np.asarray(mask)
  assert idx.shape == mask.shape == (391, 128)
  assert idx.dtype == np.int32 and mask.dtype == bool
  assert mask[:390].all() and mask[390].sum() == 80 and mask[390, :80].all()
  np.testing.assert_array_equal(np.sort(idx[mask]), np.arange(50000))
  assert idx.min() >= 0 and idx.max() < 50000  # padding holds valid indices
  assert not np.array_equal(idx[mask], np.arange(50000))  # shuffled


def test_epoch_batches_drop_remainder_and_fresh_permutation():
  epoch = jax.jit(data.epoch_batches, static_argnums=(1, 2, 3))
  idx, mask = epoch(jax.random.key(0), 50000, 128, True)
  assert idx.shape == (390, 128) and bool(mask.all())
  assert len(np.unique(np.asarray(idx))) == 390 * 128
  other, _ = epoch(jax.random.key(1), 50000, 128, True)
  same, _ = epoch(jax.random.key(0), 50000, 128, True)
  assert not np.array_equal(idx, other)
  np.testing.assert_array_equal(idx, same)


def test_epoch_batches_smaller_than_one_batch():
  idx, mask = data.epoch_batches(jax.random.key(0), 10, 128, drop_remainder=False)
  assert idx.shape == (1, 128) and int(mask.sum()) == 10
  np.testing.assert_array_equal(np.sort(np.asarray(idx)[np.asarray(mask)]), np.arange(10))
  with pytest.raises(ValueError):
    data.epoch_batches(jax.random.key(0), 10, 128, drop_remainder=True)


def test_eval_batches():
  idx, mask = data.eval_batches(10000, 100)
  assert idx.shape == (100, 100) and bool(mask.all())
  np.testing.assert_array_equal(np.asarray(idx).ravel(), np.arange(10000))
  idx, mask = data.eval_batches(355, 100)
  assert idx.shape == (4, 100) and int(mask.sum()) == 355
  np.testing.assert_array_equal(np.asarray(idx)[np.asarray(mask)], np.arange(355))


# --------------------------------------------------------------------------
# Synthetic data of CIFAR-10's shapes (timing only).


def test_synthetic_has_cifar10_shapes_and_is_deterministic():
  ds = data.load_dataset('synthetic')
  assert (ds.train_images.shape, ds.test_images.shape) == ((50000, 32, 32, 3), (10000, 32, 32, 3))
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  assert ds.num_classes == 10 and set(np.unique(ds.test_labels)) == set(range(10))
  assert (ds.mean, ds.std) == (data.CIFAR10_MEAN, data.CIFAR10_STD)
  small = data.synthetic_dataset(64, 16, seed=1)
  again = data.synthetic_dataset(64, 16, seed=1)
  for name in ('train_images', 'train_labels', 'test_images', 'test_labels'):
    np.testing.assert_array_equal(getattr(small, name), getattr(again, name))
  assert not np.array_equal(small.train_images, data.synthetic_dataset(64, 16).train_images)
