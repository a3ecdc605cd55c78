"""Tests for padam_jax.models.conv_lowering: the patches + matmul convolution equals XLA's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from padam_jax.models import conv_lowering, get_model
from padam_jax.models.conv_lowering import conv2d, conv2d_patches, conv2d_xla, use_patches

# (height, width, in_channels, out_channels, kernel_size, strides)
CASES = [
  (2, 2, 16, 8, 3, 1),  # VGG-16's last block, scaled down
  (4, 4, 8, 12, 3, 1),
  (5, 3, 4, 6, 3, 1),  # odd, non-square
  (8, 8, 6, 10, 3, 2),  # strided, even size
  (7, 5, 3, 4, 3, 2),  # strided, odd sizes
  (2, 2, 8, 8, 3, 2),
  (8, 8, 6, 10, 1, 2),  # projection shortcut
  (4, 4, 5, 7, 1, 1),
  (1, 1, 8, 8, 3, 1),
]
IDS = [f'{h}x{w}x{c}->{o}_k{k}_s{s}' for h, w, c, o, k, s in CASES]


def _inputs(case, dtype, seed=0):
  h, w, c, o, k, s = case
  rng = np.random.RandomState(seed)
  x = jnp.asarray(rng.normal(size=(3, h, w, c)), dtype)
  kernel = jnp.asarray(rng.normal(size=(k, k, c, o)) / np.sqrt(k * k * c), dtype)
  ho, wo = (h + 2 * ((k - 1) // 2) - k) // s + 1, (w + 2 * ((k - 1) // 2) - k) // s + 1
  cotangent = jnp.asarray(rng.normal(size=(3, ho, wo, o)), dtype)
  return x, kernel, cotangent, s, (k - 1) // 2


def _value_and_grads(fn, x, kernel, cotangent, strides, pad):
  y, vjp = jax.vjp(lambda x, w: fn(x, w, strides, pad), x, kernel)
  return (y, *vjp(cotangent))


def _rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_patches_equal_xla_float32(case):
  x, kernel, cotangent, strides, pad = _inputs(case, jnp.float32)
  got = jax.jit(_value_and_grads, static_argnums=(0, 4, 5))(
    conv2d_patches, x, kernel, cotangent, strides, pad
  )
  want = jax.jit(_value_and_grads, static_argnums=(0, 4, 5))(
    conv2d_xla, x, kernel, cotangent, strides, pad
  )
  for name, g, e in zip(('value', 'dx', 'dkernel'), got, want, strict=True):
    assert g.shape == e.shape and g.dtype == e.dtype == jnp.float32, name
    assert _rel_err(g, e) < 1e-5, name


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_patches_equal_xla_bfloat16(case):
  """In bfloat16 both lowerings are within bfloat16 rounding of the float32 result."""
  x, kernel, cotangent, strides, pad = _inputs(case, jnp.bfloat16)
  fn = jax.jit(_value_and_grads, static_argnums=(0, 4, 5))
  got = fn(conv2d_patches, x, kernel, cotangent, strides, pad)
  xla = fn(conv2d_xla, x, kernel, cotangent, strides, pad)
  exact = fn(conv2d_xla, *(a.astype(jnp.float32) for a in (x, kernel, cotangent)), strides, pad)
  for name, g, b, e in zip(('value', 'dx', 'dkernel'), got, xla, exact, strict=True):
    assert g.shape == e.shape and g.dtype == b.dtype == jnp.bfloat16, name
    # A few bfloat16 ulps (2**-8 relative) of the largest entry.
    assert _rel_err(g, e) < 2e-2, name
    assert _rel_err(g, b) < 3e-2, name


@pytest.mark.parametrize('strides', [1, 2])
def test_patches_match_torch_padding(strides):
  """``pad`` means PyTorch's ``padding``: the same output size and values as Conv2d."""
  torch = pytest.importorskip('torch')
  rng = np.random.RandomState(1)
  x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
  kernel = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
  got = conv2d_patches(jnp.asarray(x), jnp.asarray(kernel), strides, 1)
  want = torch.nn.functional.conv2d(
    torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
    torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()),
    stride=strides,
    padding=1,
  )
  want = want.numpy().transpose(0, 2, 3, 1)
  assert got.shape == want.shape
  assert _rel_err(got, want) < 1e-5


def test_float64_stays_float64():
  with jax.enable_x64(True):
    x, kernel, cotangent, strides, pad = _inputs((4, 4, 3, 5, 3, 1), jnp.float64)
    got = _value_and_grads(conv2d_patches, x, kernel, cotangent, strides, pad)
    want = _value_and_grads(conv2d_xla, x, kernel, cotangent, strides, pad)
    for g, e in zip(got, want, strict=True):
      assert g.dtype == jnp.float64
      assert _rel_err(g, e) < 1e-12


def test_rejects_channel_mismatch():
  with pytest.raises(ValueError, match='input channels'):
    conv2d_patches(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 4, 5)), 1, 1)


def test_selection_rule():
  # CPU: small maps, strided convs and the RGB stem use patches; other convs keep XLA's.
  assert use_patches(2, 2, 512, 1, backend='cpu')
  assert use_patches(4, 4, 256, 1, backend='cpu')
  assert use_patches(32, 32, 64, 2, backend='cpu')
  assert use_patches(32, 32, 3, 1, backend='cpu')
  assert not use_patches(8, 8, 256, 1, backend='cpu')
  assert not use_patches(32, 32, 64, 1, backend='cpu')
  # Other backends always use XLA's convolution.
  for backend in ('gpu', 'tpu'):
    assert not use_patches(2, 2, 512, 1, backend=backend)
    assert not use_patches(32, 32, 64, 2, backend=backend)


@pytest.mark.parametrize('case', [(2, 2, 8, 8, 3, 1), (8, 8, 8, 8, 3, 1), (8, 8, 4, 8, 3, 2)])
def test_conv2d_dispatch_equals_xla(case):
  x, kernel, _, strides, pad = _inputs(case, jnp.float32)
  assert _rel_err(conv2d(x, kernel, strides, pad), conv2d_xla(x, kernel, strides, pad)) < 1e-5


def test_model_gradients_do_not_depend_on_the_lowering(monkeypatch):
  """A whole VGG-16 (every map size, the last block at 2x2) agrees with both lowerings."""
  model = get_model('vgg16', width=0.0625)
  x = jnp.asarray(np.random.RandomState(2).normal(size=(4, 32, 32, 3)), jnp.float32)
  variables = model.init(jax.random.key(0), x, train=False)

  def loss(params):
    logits, _ = model.apply(
      {'params': params, 'batch_stats': variables['batch_stats']},
      x,
      train=True,
      mutable=['batch_stats'],
    )
    return jnp.sum(jnp.sin(logits))

  def run(rule):  # one compiled program per lowering (eager would compile every op)
    monkeypatch.setattr(conv_lowering, 'use_patches', rule)
    return jax.jit(jax.value_and_grad(loss))(variables['params'])

  lowered = run(lambda *args, **kwargs: True)
  xla = run(lambda *args, **kwargs: False)
  assert _rel_err(lowered[0], xla[0]) < 1e-5
  # Conv biases before BatchNorm have (mathematically) zero gradient: round-off only, so
  # every leaf is compared relative to the largest gradient entry of the whole model.
  scale = max(float(np.max(np.abs(np.asarray(e)))) for e in jax.tree.leaves(xla[1]))
  for g, e in zip(jax.tree.leaves(lowered[1]), jax.tree.leaves(xla[1]), strict=True):
    assert float(np.max(np.abs(np.asarray(g) - np.asarray(e)))) < 1e-5 * scale
