"""Shared model pieces: PyTorch-exact BatchNorm, conv/dense helpers, init rules, width rounding."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from padam_jax.models import batch_stats, conv_lowering

Dtype = Any
Initializer = Callable[..., jax.Array]


def channels(base: int, width: float) -> int:
  """Scales a channel count by ``width``: round half up, at least 1.

  ``width == 1.0`` returns ``base`` unchanged, so the exact architecture is kept.
  """
  return max(1, int(math.floor(base * width + 0.5)))


def at_least_float32(dtype: Dtype) -> jnp.dtype:
  """The dtype used for statistics and logits: float32, or float64 when ``dtype`` is float64."""
  return jnp.promote_types(dtype, jnp.float32)


def torch_uniform(fan_in: int) -> Initializer:
  """PyTorch's default conv/linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

  This is what ``kaiming_uniform_(a=sqrt(5))`` gives for weights and what PyTorch uses for biases.
  """
  bound = 1.0 / math.sqrt(fan_in)

  def init(key: jax.Array, shape: tuple[int, ...], dtype: Dtype = jnp.float32) -> jax.Array:
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


# He init as the WRN authors write it: N(0, sqrt(2 / (k * k * out_channels))), not truncated.
# For an HWIO kernel, fan_out = k * k * out_channels.
wrn_conv_init: Initializer = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


class BatchNorm(nn.Module):
  """BatchNorm over the last axis with PyTorch's exact semantics.

  Normalises with the biased batch variance in training, updates the running variance with the
  unbiased one, ``running = (1 - momentum) * running + momentum * batch`` (PyTorch convention),
  and keeps running statistics in the ``batch_stats`` collection as ``mean`` and ``var``.
  Statistics are computed in at least float32; the output is cast to ``dtype``.
  Like ``flax.linen.BatchNorm``, running statistics are not updated during ``init``.
  """

  momentum: float = 0.1
  epsilon: float = 1e-5
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    features = x.shape[-1]
    stat_dtype = at_least_float32(self.dtype)
    scale = self.param('scale', nn.initializers.ones, (features,), self.param_dtype)
    bias = self.param('bias', nn.initializers.zeros, (features,), self.param_dtype)
    running_mean = self.variable('batch_stats', 'mean', jnp.zeros, (features,), jnp.float32)
    running_var = self.variable('batch_stats', 'var', jnp.ones, (features,), jnp.float32)

    x = x.astype(stat_dtype)
    if train:  # one all-reduce each way when the batch is split over devices
      shift = jax.lax.stop_gradient(running_mean.value.astype(stat_dtype))
      y, mean, var = batch_stats.normalize_train(
        x, scale.astype(stat_dtype), bias.astype(stat_dtype), shift, self.epsilon
      )
      if not self.is_initializing():
        n = x.size // features
        unbiased_var = var * (n / max(n - 1, 1))
        m = self.momentum
        running_mean.value = (1 - m) * running_mean.value + m * mean
        running_var.value = (1 - m) * running_var.value + m * unbiased_var
      return y.astype(self.dtype)
    mean, var = running_mean.value, running_var.value

    mul = scale.astype(stat_dtype) * jax.lax.rsqrt(var.astype(stat_dtype) + self.epsilon)
    y = (x - mean.astype(stat_dtype)) * mul + bias.astype(stat_dtype)
    return y.astype(self.dtype)


class Conv(nn.Module):
  """Square 2-D convolution on NHWC inputs with PyTorch's padding ``(k - 1) // 2`` on every side.

  The kernel is HWIO. ``kernel_init=None`` means PyTorch's default init; the bias (if any)
  always uses PyTorch's default. Every convolution in the models goes through this module.
  """

  features: int
  kernel_size: int = 3
  strides: int = 1
  use_bias: bool = False
  kernel_init: Initializer | None = None
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    in_features = x.shape[-1]
    fan_in = k * k * in_features
    kernel_init = self.kernel_init or torch_uniform(fan_in)
    kernel = self.param('kernel', kernel_init, (k, k, in_features, self.features), self.param_dtype)
    pad = (k - 1) // 2
    # The lowering (XLA's convolution or patches + matmul) is chosen in conv_lowering.
    y = conv_lowering.conv2d(x.astype(self.dtype), kernel.astype(self.dtype), self.strides, pad)
    if self.use_bias:
      bias = self.param('bias', torch_uniform(fan_in), (self.features,), self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pool with stride 2 on NHWC (PyTorch ``max_pool2d(x, 2, 2)``; odd edges dropped).

  Written as a reshape and a max: its gradient is a cheap elementwise mask, where the
  gradient of ``flax.linen.max_pool`` (a ``reduce_window``) is several times slower on
  XLA:CPU (measured: docs/measurements.md#max-pool). Exact ties share
  the gradient instead of giving it to the first maximum; after a ReLU the only likely
  ties are zeros, whose gradient the ReLU discards anyway.
  """
  n, h, w, c = x.shape
  x = x[:, : h - h % 2, : w - w % 2, :]
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def conv3x3(
  features: int,
  strides: int = 1,
  use_bias: bool = False,
  *,
  kernel_init: Initializer | None = None,
  dtype: Dtype = jnp.float32,
  name: str | None = None,
) -> Conv:
  """A 3x3 convolution with padding 1 (PyTorch ``Conv2d(..., 3, stride, padding=1)``)."""
  return Conv(features, 3, strides, use_bias, kernel_init, dtype, name=name)


def conv1x1(
  features: int,
  strides: int = 1,
  use_bias: bool = False,
  *,
  kernel_init: Initializer | None = None,
  dtype: Dtype = jnp.float32,
  name: str | None = None,
) -> Conv:
  """A 1x1 convolution without padding (used for projection shortcuts)."""
  return Conv(features, 1, strides, use_bias, kernel_init, dtype, name=name)


def dense(
  features: int, in_features: int, *, dtype: Dtype = jnp.float32, name: str | None = None
) -> nn.Dense:
  """A linear layer with PyTorch's default init (weights and bias U(+-1/sqrt(in_features)))."""
  init = torch_uniform(in_features)
  return nn.Dense(
    features, dtype=dtype, param_dtype=jnp.float32, kernel_init=init, bias_init=init, name=name
  )


def classifier_head(x: jax.Array, num_classes: int, dtype: Dtype) -> jax.Array:
  """Global average pooling over H and W, then the linear layer named ``head``.

  Must be called from inside a compact method. Returns logits in float32 (float64 when
  ``dtype`` is float64).
  """
  x = jnp.mean(x, axis=(1, 2))
  logits = dense(num_classes, x.shape[-1], dtype=dtype, name='head')(x)
  return logits.astype(at_least_float32(dtype))
