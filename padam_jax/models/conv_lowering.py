"""How the models' 2-D convolutions are lowered: XLA's convolution, or patches + one matmul.

Every convolution of the models goes through ``layers.Conv``, which calls ``conv2d`` here;
this is the only place that decides how a convolution is expressed to XLA.

Why: on XLA:CPU, XLA's convolution is far slower than patches + matmul on tiny maps
(a 3x3 kernel over VGG-16's 2x2 maps above all; no compiler option tried, oneDNN, XNNPACK
or library fusions of convolutions, changed that) and slower on 3x3 and 4x4 maps, on
strided convolutions and on the RGB stem (3 input channels; only the kernel gradient is
needed). Stride-1 3x3 convolutions on 8x8 and larger maps stay XLA's, which is faster
there; a per-tap matmul kernel gradient was slower still (measured:
docs/measurements.md#conv-lowering; ``python -m benchmarks.bench_conv`` reruns it).

What we do: on CPU, for the convolutions where patches are faster (``use_patches``), build
the patches explicitly: pad the input as PyTorch does, take the ``k * k`` shifted (and
strided) slices, concatenate them along channels, and contract with the kernel reshaped
to ``(k * k * in, out)`` in one ``lax.dot_general`` (float32 accumulation). The result is
the same convolution up to float32 round-off (the summation order differs), and its
gradients are slices, pads and matmuls, which XLA:CPU runs at matmul speed. Other
backends always get XLA's convolution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

# On CPU, lowered as patches + matmul: inputs at most this large on a side, ...
PATCHES_MAX_SIZE = 4
# ... strided convolutions, and inputs with at most this many channels (the RGB stem).
PATCHES_MAX_IN_CHANNELS = 4


def conv2d_xla(x: jax.Array, kernel: jax.Array, strides: int, pad: int) -> jax.Array:
  """XLA's convolution of an NHWC input with an HWIO kernel, symmetric padding ``pad``."""
  return lax.conv_general_dilated(
    x,
    kernel,
    window_strides=(strides, strides),
    padding=((pad, pad), (pad, pad)),
    dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
  )


def conv2d_patches(x: jax.Array, kernel: jax.Array, strides: int, pad: int) -> jax.Array:
  """The same convolution as ``conv2d_xla``, as explicit patches (im2col) and one matmul.

  Args:
    x: NHWC input.
    kernel: HWIO kernel ``(kh, kw, C, O)``.
    strides: the stride along both spatial axes.
    pad: zero padding on every side (PyTorch's ``padding``).

  Returns:
    NHWC output ``(N, Ho, Wo, O)`` with ``Ho = (H + 2 * pad - kh) // strides + 1`` (and
    likewise ``Wo``), in the result dtype of ``lax.conv_general_dilated``.
  """
  n, h, w, c = x.shape
  kh, kw, kc, out = kernel.shape
  if kc != c:
    raise ValueError(f'kernel expects {kc} input channels, input has {c}.')
  ho = (h + 2 * pad - kh) // strides + 1
  wo = (w + 2 * pad - kw) // strides + 1
  if pad:
    x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  # Tap (i, j) sees x_padded[:, i + s * a, j + s * b, :] for output position (a, b).
  taps = [
    lax.slice(
      x,
      (0, i, j, 0),
      (n, i + strides * (ho - 1) + 1, j + strides * (wo - 1) + 1, c),
      (1, strides, strides, 1),
    )
    for i in range(kh)
    for j in range(kw)
  ]
  patches = taps[0] if len(taps) == 1 else jnp.concatenate(taps, axis=-1)
  # Channel index of the patches is (i * kw + j) * C + c, the row-major flattening of HWI.
  # Low-precision inputs accumulate in float32, like XLA's convolution; then round once.
  dtype = jnp.result_type(x.dtype, kernel.dtype)
  y = lax.dot_general(
    patches.reshape(n * ho * wo, kh * kw * c),
    kernel.reshape(kh * kw * c, out),
    dimension_numbers=(((1,), (0,)), ((), ())),
    preferred_element_type=jnp.promote_types(dtype, jnp.float32),
  )
  return y.astype(dtype).reshape(n, ho, wo, out)


def use_patches(
  height: int,
  width: int,
  in_channels: int,
  strides: int,
  backend: str | None = None,
) -> bool:
  """Whether ``conv2d`` lowers this convolution as patches + matmul (see the module doc)."""
  backend = jax.default_backend() if backend is None else backend
  if backend != 'cpu':
    return False
  return (
    max(height, width) <= PATCHES_MAX_SIZE or strides > 1 or in_channels <= PATCHES_MAX_IN_CHANNELS
  )


def conv2d(x: jax.Array, kernel: jax.Array, strides: int = 1, pad: int = 0) -> jax.Array:
  """NHWC x HWIO convolution with symmetric zero padding; the lowering is chosen by shape."""
  _, h, w, c = x.shape
  if use_patches(h, w, c, strides):
    return conv2d_patches(x, kernel, strides, pad)
  return conv2d_xla(x, kernel, strides, pad)
