"""VGG-16 for CIFAR (conv with bias + BatchNorm + ReLU, five max-pools, one linear layer)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from padam_jax.models.layers import (
  BatchNorm,
  Dtype,
  channels,
  classifier_head,
  conv3x3,
  max_pool_2x2,
)

# Output channels of each 3x3 conv; 'M' is a 2x2 max-pool with stride 2.
VGG16_CONFIG: tuple[int | str, ...] = (
  64,
  64,
  'M',
  128,
  128,
  'M',
  256,
  256,
  256,
  'M',
  512,
  512,
  512,
  'M',
  512,
  512,
  512,
  'M',
)


class VGG16(nn.Module):
  """VGG-16 (CIFAR variant) with PyTorch's default initialisation.

  Layers are named ``conv1..conv13`` / ``bn1..bn13`` and ``head``. On 32x32 inputs the map is
  1x1 after the last pool, so the global average pool equals the original flatten.

  Attributes:
    num_classes: number of output logits.
    width: multiplies every channel count (see ``layers.channels``); 1.0 is the exact model.
    dtype: compute dtype; parameters are float32.
  """

  num_classes: int = 10
  width: float = 1.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """Maps NHWC images to logits of shape (batch, num_classes)."""
    i = 0
    for v in VGG16_CONFIG:
      if v == 'M':
        x = max_pool_2x2(x)
        continue
      i += 1
      x = conv3x3(channels(int(v), self.width), use_bias=True, dtype=self.dtype, name=f'conv{i}')(x)
      x = BatchNorm(dtype=self.dtype, name=f'bn{i}')(x, train)
      x = nn.relu(x)
    return classifier_head(x, self.num_classes, self.dtype)
