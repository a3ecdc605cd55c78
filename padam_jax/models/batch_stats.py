"""Training-mode batch normalisation with one reduction of the batch each way.

``normalize_train`` returns what ``layers.BatchNorm`` needs in training: the normalised,
scaled and shifted output and the batch mean and (biased) variance per channel. When the
batch is split over devices, every reduction over it becomes a cross-device all-reduce
and a synchronisation point. Written naively (mean, then the variance from it) and
differentiated by JAX, one BatchNorm costs about four of them a step; here the forward
pass takes the sum and the sum of squares from the same input (XLA merges their two
all-reduces into one) and the backward pass, written by hand, likewise takes ``sum(dy)``
and ``sum(dy * x_hat)`` (one more). Stacking the two sums into one reduction instead is
no faster: XLA then materialises the stacked array (measured:
docs/measurements.md#batch-stats).

The sums are taken around ``shift`` (any per-channel estimate of the mean, e.g. the
running mean, without gradient): ``E[(x - shift)^2] - E[x - shift]^2`` loses digits to
cancellation only as far as ``shift`` is from the batch mean in units of the batch's
standard deviation (at the first step the running mean is 0: the one-pass formula).
Being a ``custom_vjp``, it has reverse-mode derivatives only (no ``jvp``/``jacfwd``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# What the forward pass keeps for the backward one: x, scale, mean, 1 / std and shift.
_Residuals = tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]
_Outputs = tuple[jax.Array, jax.Array, jax.Array]  # y, mean, var


def _moments(x: jax.Array, shift: jax.Array) -> tuple[jax.Array, jax.Array]:
  axes = tuple(range(x.ndim - 1))
  n = x.size // x.shape[-1]
  d = x - shift
  mean_d = jnp.sum(d, axis=axes) / n
  var = jnp.sum(jnp.square(d), axis=axes) / n - jnp.square(mean_d)
  return shift + mean_d, jnp.maximum(var, 0.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def normalize_train(
  x: jax.Array, scale: jax.Array, bias: jax.Array, shift: jax.Array, epsilon: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(y, mean, var)``: ``y = (x - mean) / sqrt(var + epsilon) * scale + bias`` over ``[..., C]``.

  ``mean`` and ``var`` are the batch statistics over all axes but the last; ``var`` is biased.
  All arrays share one floating dtype; ``shift`` gets no gradient.
  """
  return _forward(x, scale, bias, shift, epsilon)[0]


def _forward(
  x: jax.Array, scale: jax.Array, bias: jax.Array, shift: jax.Array, epsilon: float
) -> tuple[_Outputs, _Residuals]:
  mean, var = _moments(x, shift)
  rstd = jax.lax.rsqrt(var + epsilon)
  y = (x - mean) * (scale * rstd) + bias
  return (y, mean, var), (x, scale, mean, rstd, shift)


def _backward(
  epsilon: float, residuals: _Residuals, cotangents: _Outputs
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  del epsilon
  x, scale, mean, rstd, shift = residuals
  dy, dmean, dvar = cotangents
  axes = tuple(range(x.ndim - 1))
  n = x.size // x.shape[-1]
  centered = x - mean
  x_hat = centered * rstd
  dbias, dscale = jnp.sum(dy, axis=axes), jnp.sum(dy * x_hat, axis=axes)
  dx = (scale * rstd) * (dy - (dbias + x_hat * dscale) / n)
  dx = dx + (dmean + 2.0 * dvar * centered) / n  # the statistics' own cotangents
  return dx, dscale, dbias, jnp.zeros_like(shift)


normalize_train.defvjp(_forward, _backward)
