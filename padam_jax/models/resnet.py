"""CIFAR ResNets built from the post-activation BasicBlock; ResNet-18."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from padam_jax.models.layers import (
  BatchNorm,
  Dtype,
  Initializer,
  channels,
  classifier_head,
  conv1x1,
  conv3x3,
)


class BasicBlock(nn.Module):
  """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU.

  The shortcut is the identity, or a 1x1 conv + BN projection when the stride or the number
  of channels changes. ``kernel_init=None`` means PyTorch's default conv init.
  """

  features: int
  strides: int = 1
  kernel_init: Initializer | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv_kw = dict(kernel_init=self.kernel_init, dtype=self.dtype)
    y = conv3x3(self.features, self.strides, name='conv1', **conv_kw)(x)
    y = nn.relu(BatchNorm(dtype=self.dtype, name='bn1')(y, train))
    y = conv3x3(self.features, name='conv2', **conv_kw)(y)
    y = BatchNorm(dtype=self.dtype, name='bn2')(y, train)
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = conv1x1(self.features, self.strides, name='shortcut_conv', **conv_kw)(x)
      shortcut = BatchNorm(dtype=self.dtype, name='shortcut_bn')(shortcut, train)
    return nn.relu(y + shortcut)


class ResNet(nn.Module):
  """A CIFAR ResNet: 3x3 stem conv + BN + ReLU (no max-pool), stages of BasicBlocks, global
  average pool, linear head. The defaults give ResNet-18.

  Layers are named ``stem_conv``, ``stem_bn``, ``stage{s}_block{b}`` (1-based) and ``head``.

  Attributes:
    num_classes: number of output logits.
    width: multiplies every channel count (see ``layers.channels``); 1.0 is the exact model.
    dtype: compute dtype; parameters are float32.
    stem_features: output channels of the stem conv (before ``width``).
    stage_features: channels of each stage (before ``width``).
    stage_blocks: number of BasicBlocks in each stage.
    stage_strides: stride of the first block of each stage.
    kernel_init: conv kernel init; ``None`` means PyTorch's default.
  """

  num_classes: int = 10
  width: float = 1.0
  dtype: Dtype = jnp.float32
  stem_features: int = 64
  stage_features: Sequence[int] = (64, 128, 256, 512)
  stage_blocks: Sequence[int] = (2, 2, 2, 2)
  stage_strides: Sequence[int] = (1, 2, 2, 2)
  kernel_init: Initializer | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """Maps NHWC images to logits of shape (batch, num_classes)."""
    x = conv3x3(
      channels(self.stem_features, self.width),
      kernel_init=self.kernel_init,
      dtype=self.dtype,
      name='stem_conv',
    )(x)
    x = nn.relu(BatchNorm(dtype=self.dtype, name='stem_bn')(x, train))
    stages = zip(self.stage_features, self.stage_blocks, self.stage_strides, strict=True)
    for s, (features, blocks, strides) in enumerate(stages, start=1):
      for b in range(1, blocks + 1):
        x = BasicBlock(
          channels(features, self.width),
          strides if b == 1 else 1,
          self.kernel_init,
          self.dtype,
          name=f'stage{s}_block{b}',
        )(x, train)
    return classifier_head(x, self.num_classes, self.dtype)


class ResNet18(ResNet):
  """ResNet-18 for CIFAR: stages 64/128/256/512, two BasicBlocks each, strides 1/2/2/2,
  PyTorch's default initialisation, 4x4 (global) average pool, linear 512 -> classes."""
