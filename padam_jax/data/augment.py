"""On-device augmentation, normalisation and batch index plans (pure, jittable).

The whole dataset lives on the accelerator as uint8; each training step takes
a batch of indices, gathers the images, and augments them here. The
augmentation is the authors' torchvision pipeline: ``RandomCrop(32,
padding=4)`` (zero padding of the raw image), ``RandomHorizontalFlip()``, then
``Normalize(mean, std)`` of ``ToTensor()`` values in [0, 1].

Batch plans have static shapes so an epoch can run under ``lax.scan``: with
``drop_remainder=False`` the last partial batch is padded and a mask marks the
real examples (CIFAR train: 50000 / 128 -> 391 steps, the last with 80 real
examples, as PyTorch's DataLoader does).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
  'augment',
  'epoch_batches',
  'eval_batches',
  'normalize',
  'num_batches',
  'random_crop_flip',
]


def normalize(
  images: jax.Array | np.ndarray,
  mean: Sequence[float],
  std: Sequence[float],
  dtype: jax.typing.DTypeLike = jnp.float32,
) -> jax.Array:
  """uint8 images in [0, 255] -> ``((x / 255) - mean) / std`` as `dtype`.

  Args:
    images: uint8 ``[..., C]`` images.
    mean: per-channel mean, in [0, 1] pixel units (length C).
    std: per-channel standard deviation, in [0, 1] pixel units (length C).
    dtype: output dtype (e.g. ``jnp.bfloat16``); the arithmetic is float32.

  Returns:
    Normalised images of shape ``images.shape`` and dtype `dtype`.
  """
  x = jnp.asarray(images, jnp.float32) * (1.0 / 255.0)
  return ((x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)).astype(dtype)


def random_crop_flip(rng: jax.Array, images: jax.Array, padding: int = 4) -> jax.Array:
  """Per-image random crop from the zero-padded image, then a random h-flip.

  Equivalent to torchvision's ``RandomCrop(H, padding=padding)`` followed by
  ``RandomHorizontalFlip(0.5)`` applied to each raw image: the image is padded
  with pixel value 0 (before normalisation) on every side, an ``H x W`` window
  is taken at an offset drawn uniformly from ``{0, ..., 2 * padding}`` in each
  axis, and it is mirrored left-right with probability 1/2.

  Args:
    rng: a PRNG key.
    images: ``[N, H, W, C]`` images (typically uint8).
    padding: pixels of zero padding per side; 0 gives flips only.

  Returns:
    Augmented images, same shape and dtype as `images`.
  """
  n, h, w, c = images.shape
  crop_rng, flip_rng = jax.random.split(rng)
  offsets = jax.random.randint(crop_rng, (n, 2), 0, 2 * padding + 1)
  flips = jax.random.bernoulli(flip_rng, 0.5, (n,))
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))

  def crop_one(image: jax.Array, offset: jax.Array, flip: jax.Array) -> jax.Array:
    window = jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))
    return jnp.where(flip, window[:, ::-1, :], window)

  return jax.vmap(crop_one)(padded, offsets, flips)


def augment(
  rng: jax.Array,
  images: jax.Array,
  mean: Sequence[float],
  std: Sequence[float],
  padding: int = 4,
  dtype: jax.typing.DTypeLike = jnp.float32,
) -> jax.Array:
  """The training transform: random crop + flip on uint8, then normalise.

  Example::

    x = augment(key, train_images[idx], ds.mean, ds.std)  # float32 [B,32,32,3]
  """
  return normalize(random_crop_flip(rng, images, padding), mean, std, dtype)


def num_batches(num_examples: int, batch_size: int, drop_remainder: bool) -> int:
  """Steps per epoch: ``floor`` or ``ceil`` of ``num_examples / batch_size``."""
  if num_examples <= 0 or batch_size <= 0:
    raise ValueError(
      f'num_examples ({num_examples}) and batch_size ({batch_size}) must be positive.'
    )
  if drop_remainder:
    return num_examples // batch_size
  return -(-num_examples // batch_size)


def _padded_plan(
  order: jax.Array, num_examples: int, batch_size: int, drop_remainder: bool
) -> tuple[jax.Array, jax.Array]:
  steps = num_batches(num_examples, batch_size, drop_remainder)
  if steps == 0:
    raise ValueError(
      f'batch_size {batch_size} exceeds num_examples {num_examples} with '
      'drop_remainder=True: the epoch would have no steps.'
    )
  position = jnp.arange(steps * batch_size)
  # Padding slots repeat real examples from the start of the order (so a
  # consumer that ignores the mask still sees real images); mask marks them.
  indices = order[position % num_examples].astype(jnp.int32)
  mask = position < num_examples
  return (indices.reshape(steps, batch_size), mask.reshape(steps, batch_size))


def epoch_batches(
  rng: jax.Array, num_examples: int, batch_size: int, drop_remainder: bool
) -> tuple[jax.Array, jax.Array]:
  """A shuffled epoch as static-shape index batches and a validity mask.

  Args:
    rng: PRNG key; use a fresh one per epoch for a fresh permutation.
    num_examples: dataset size (static).
    batch_size: examples per batch (static).
    drop_remainder: drop the last partial batch (True) or keep it (False),
      padding it to `batch_size` with mask False on the padding.

  Returns:
    ``(indices, mask)``: ``int32[num_batches, batch_size]`` example indices and
    ``bool[num_batches, batch_size]``, True for real examples. Each index in
    ``range(num_examples)`` appears exactly once among the True entries (all of
    them unless dropped by `drop_remainder`). Losses and metrics should be
    weighted by ``mask``; note that BatchNorm in training mode also needs the
    mask (``flax.linen.BatchNorm(...)(x, mask=...)``) to keep padding out of
    the batch statistics.
  """
  order = jax.random.permutation(rng, num_examples)
  return _padded_plan(order, num_examples, batch_size, drop_remainder)


def eval_batches(num_examples: int, batch_size: int) -> tuple[jax.Array, jax.Array]:
  """Every example once, in order, as padded batches with a mask.

  Returns ``(indices, mask)`` shaped ``[ceil(num_examples / batch_size),
  batch_size]`` (CIFAR test: 10000 / 100 -> 100 full batches).
  """
  order = jnp.arange(num_examples, dtype=jnp.int32)
  return _padded_plan(order, num_examples, batch_size, drop_remainder=False)
