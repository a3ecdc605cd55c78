"""Tests for padam_jax.models: structure, parameter counts, BatchNorm, init, PyTorch twins."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from padam_jax.models import MODELS, batch_stats, count_params, get_model
from padam_jax.models.layers import BatchNorm, channels

NAMES = ('vgg16', 'resnet18', 'wrn16_4')
EXACT_COUNTS = {
  ('vgg16', 10): 14_728_266,
  ('vgg16', 100): 14_774_436,
  ('resnet18', 10): 11_173_962,
  ('resnet18', 100): 11_220_132,
  ('wrn16_4', 10): 2_777_674,
  ('wrn16_4', 100): 2_800_804,
}
SMALL_WIDTH = 0.125
BATCH = 4


def _shape_init(model, dtype=jnp.float32):
  x = jax.ShapeDtypeStruct((1, 32, 32, 3), dtype)
  return jax.eval_shape(lambda k, x: model.init(k, x, train=False), jax.random.key(0), x)


def _images(seed=0, batch=BATCH):
  return np.random.RandomState(seed).normal(size=(batch, 32, 32, 3))


@pytest.fixture(scope='module')
def small_variables():
  """Real Flax init of every model at SMALL_WIDTH, done once.

  Eager init compiles a random-number kernel per parameter shape; an 'rbg' key makes those
  compiles about three times cheaper on CPU than the default threefry key (same init rules).
  """
  key = jax.random.key(0, impl='rbg')
  out = {}
  for name in NAMES:
    model = get_model(name, width=SMALL_WIDTH)
    out[name] = model.init(key, jnp.zeros((1, 32, 32, 3)), train=False)
  return out


def _rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


# ----------------------------------------------------------------------------- registry, counts


@pytest.mark.parametrize('name,num_classes', sorted(EXACT_COUNTS))
def test_exact_param_counts(name, num_classes):
  variables = _shape_init(get_model(name, num_classes=num_classes))
  assert count_params(variables) == EXACT_COUNTS[(name, num_classes)]
  assert count_params(variables['params']) == EXACT_COUNTS[(name, num_classes)]


def test_registry_names():
  assert set(MODELS) == set(NAMES)


def test_get_model_rejects_bad_arguments():
  with pytest.raises(ValueError) as info:
    get_model('resnet50')
  assert all(name in str(info.value) for name in NAMES)
  with pytest.raises(ValueError, match='width'):
    get_model('vgg16', width=0.0)
  with pytest.raises(ValueError, match='num_classes'):
    get_model('vgg16', num_classes=0)


def test_channels_rounding():
  assert channels(64, 1.0) == 64
  assert channels(64, 0.125) == 8
  assert channels(10, 0.25) == 3  # 2.5 rounds half up
  assert channels(64, 0.001) == 1  # never below one channel
  assert channels(64, 1.5) == 96


def test_width_scales_every_layer():
  params = _shape_init(get_model('resnet18', width=0.5))['params']
  assert params['stem_conv']['kernel'].shape == (3, 3, 3, 32)
  assert params['stage4_block2']['conv2']['kernel'].shape == (3, 3, 256, 256)
  assert params['head']['kernel'].shape == (256, 10)


# ----------------------------------------------------------------------------- BatchNorm


def test_batchnorm_matches_pytorch_formulas():
  x = jnp.asarray(np.random.RandomState(1).normal(2.0, 3.0, size=(4, 3, 3, 5)), jnp.float32)
  bn = BatchNorm()
  variables = bn.init(jax.random.key(0), x, train=True)
  # Running statistics are left alone during init, as in flax.linen.BatchNorm.
  np.testing.assert_array_equal(variables['batch_stats']['mean'], np.zeros(5))
  y, updates = bn.apply(variables, x, train=True, mutable=['batch_stats'])

  xs = np.asarray(x, np.float64).reshape(-1, 5)
  mean, biased, unbiased = xs.mean(0), xs.var(0), xs.var(0, ddof=1)
  np.testing.assert_allclose(
    y.reshape(-1, 5), (xs - mean) / np.sqrt(biased + 1e-5), rtol=1e-5, atol=1e-5
  )
  np.testing.assert_allclose(updates['batch_stats']['mean'], 0.1 * mean, rtol=1e-5)
  np.testing.assert_allclose(updates['batch_stats']['var'], 0.9 + 0.1 * unbiased, rtol=1e-5)

  y_eval = bn.apply(updates | {'params': variables['params']}, x, train=False)
  stats = updates['batch_stats']
  expected = (xs - np.asarray(stats['mean'])) / np.sqrt(np.asarray(stats['var']) + 1e-5)
  np.testing.assert_allclose(y_eval.reshape(-1, 5), expected, rtol=1e-5, atol=1e-5)


def test_batchnorm_statistics_gradients_equal_autodiff_of_two_pass_formula():
  """The hand-written backward pass of ``normalize_train``, for cotangents of all three
  outputs, against JAX's derivative of the plain two-pass statistics (float64)."""
  rng = np.random.RandomState(3)
  x, dy = (rng.normal(2.0, 3.0, size=(4, 3, 3, 5)) for _ in range(2))
  scale, bias, shift, dmean, dvar = (rng.normal(size=5) for _ in range(5))

  def two_pass(x, scale, bias):
    mean = jnp.mean(x, axis=(0, 1, 2))
    var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
    return (x - mean) * jax.lax.rsqrt(var + 1e-5) * scale + bias, mean, var

  ours = lambda x, scale, bias: batch_stats.normalize_train(x, scale, bias, shift, 1e-5)  # noqa: E731
  with jax.enable_x64():
    x, dy, scale, bias, shift, dmean, dvar = (
      jnp.asarray(a, jnp.float64) for a in (x, dy, scale, bias, shift, dmean, dvar)
    )
    (y, mean, var), ours_vjp = jax.vjp(ours, x, scale, bias)
    expected, reference_vjp = jax.vjp(two_pass, x, scale, bias)
    for got, want in zip((y, mean, var), expected, strict=True):
      np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    for got, want in zip(
      ours_vjp((dy, dmean, dvar)), reference_vjp((dy, dmean, dvar)), strict=True
    ):
      np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_batchnorm_bf16_keeps_float32_statistics():
  x = jnp.asarray(np.random.RandomState(2).normal(size=(4, 2, 2, 3)), jnp.bfloat16)
  bn = BatchNorm(dtype=jnp.bfloat16)
  variables = bn.init(jax.random.key(0), x, train=True)
  y, updates = bn.apply(variables, x, train=True, mutable=['batch_stats'])
  assert y.dtype == jnp.bfloat16
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(updates))
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(variables['params']))


# ----------------------------------------------------------------------------- init


def test_pytorch_default_init(small_variables):
  params = small_variables['vgg16']['params']
  kernel = np.asarray(params['conv2']['kernel'])  # 3x3, 8 -> 8 at width 1/8
  bound = 1 / math.sqrt(3 * 3 * 8)
  assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.9 * bound
  assert np.abs(np.asarray(params['conv2']['bias'])).max() <= bound
  head = np.asarray(params['head']['kernel'])
  assert np.abs(head).max() <= 1 / math.sqrt(head.shape[0])
  np.testing.assert_array_equal(params['bn1']['scale'], 1.0)
  np.testing.assert_array_equal(params['bn1']['bias'], 0.0)
  stats = small_variables['vgg16']['batch_stats']['bn1']
  np.testing.assert_array_equal(stats['mean'], 0.0)
  np.testing.assert_array_equal(stats['var'], 1.0)
  r_kernel = np.asarray(small_variables['resnet18']['params']['stage4_block2']['conv2']['kernel'])
  assert np.abs(r_kernel).max() <= 1 / math.sqrt(3 * 3 * 64)


def test_wrn_he_normal_init(small_variables):
  params = small_variables['wrn16_4']['params']
  kernel = np.asarray(params['stage3_block2']['conv2']['kernel'])  # 3x3, 32 -> 32
  std = math.sqrt(2 / (3 * 3 * 32))
  assert abs(kernel.std() / std - 1) < 0.05
  assert np.abs(kernel).max() > 2.5 * std  # untruncated
  head = np.asarray(params['head']['kernel'])
  assert np.abs(head).max() <= 1 / math.sqrt(head.shape[0])


# ----------------------------------------------------------------------------- shapes, modes


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16], ids=['f32', 'bf16'])
def test_output_shapes_and_dtypes(small_variables, name, dtype):
  model = get_model(name, width=SMALL_WIDTH, dtype=dtype)
  # Parameters are float32 whatever the compute dtype.
  abstract = _shape_init(model, dtype)
  assert {leaf.dtype for leaf in jax.tree.leaves(abstract)} == {jnp.dtype(jnp.float32)}

  variables = small_variables[name]
  x = jnp.asarray(_images(), dtype)
  logits = model.apply(variables, x, train=False)
  assert logits.shape == (BATCH, 10) and logits.dtype == jnp.float32
  logits, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
  assert logits.shape == (BATCH, 10) and logits.dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(logits)))
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(updates))


@pytest.mark.parametrize('name', NAMES)
def test_batch_stats_move_only_in_train_mode(small_variables, name):
  model = get_model(name, width=SMALL_WIDTH)
  variables = small_variables[name]
  x = jnp.asarray(_images(), jnp.float32)
  _, trained = model.apply(variables, x, train=True, mutable=['batch_stats'])
  _, evaluated = model.apply(variables, x, train=False, mutable=['batch_stats'])
  before = jax.tree.leaves(variables['batch_stats'])
  assert all(not np.allclose(a, b) for a, b in zip(before, jax.tree.leaves(trained), strict=True))
  assert all(np.array_equal(a, b) for a, b in zip(before, jax.tree.leaves(evaluated), strict=True))


# ----------------------------------------------------------------------------- PyTorch twins


@pytest.mark.parametrize('name,num_classes', sorted(EXACT_COUNTS))
def test_torch_twin_param_counts(name, num_classes):
  torch = pytest.importorskip('torch')
  from padam_jax.reference.models import get_torch_model

  with torch.device('meta'):
    module = get_torch_model(name, num_classes=num_classes)
  assert sum(p.numel() for p in module.parameters()) == EXACT_COUNTS[(name, num_classes)]


def _compare_with_torch(name, variables, dtype, tol):
  """Runs both frameworks in eval and train mode; returns nothing, asserts agreement."""
  torch = pytest.importorskip('torch')
  from padam_jax.reference.convert import flax_to_torch, torch_to_flax
  from padam_jax.reference.models import get_torch_model

  model = get_model(name, width=SMALL_WIDTH, dtype=dtype)
  variables = jax.tree.map(lambda v: v.astype(dtype), variables)
  module = get_torch_model(name, width=SMALL_WIDTH).to(
    torch.float64 if dtype == jnp.float64 else torch.float32
  )
  flax_to_torch(variables, module)
  images = _images(seed=3)
  x_jax = jnp.asarray(images, dtype)
  x_torch = torch.from_numpy(np.asarray(x_jax).transpose(0, 3, 1, 2).copy())

  module.eval()
  with torch.no_grad():
    expected = module(x_torch).numpy()
  logits = model.apply(variables, x_jax, train=False)
  assert logits.dtype == dtype
  assert _rel_err(logits, expected) < tol

  module.train()
  with torch.no_grad():
    expected = module(x_torch).numpy()
  logits, updates = model.apply(variables, x_jax, train=True, mutable=['batch_stats'])
  assert _rel_err(logits, expected) < tol
  # Read the torch running statistics back and compare them leaf by leaf.
  from_torch = torch_to_flax(module, variables)
  for ours, theirs in zip(
    jax.tree.leaves(updates['batch_stats']), jax.tree.leaves(from_torch['batch_stats']), strict=True
  ):
    assert _rel_err(ours, theirs) < tol
  for ours, theirs in zip(
    jax.tree.leaves(variables['params']), jax.tree.leaves(from_torch['params']), strict=True
  ):
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize('name', NAMES)
def test_torch_twin_agrees_float32(small_variables, name):
  _compare_with_torch(name, small_variables[name], jnp.float32, tol=1e-4)


@pytest.mark.parametrize('name', NAMES)
def test_torch_twin_agrees_float64(small_variables, name):
  with jax.enable_x64(True):
    _compare_with_torch(name, small_variables[name], jnp.float64, tol=1e-10)


def test_torch_twin_wrn_init_rule():
  torch = pytest.importorskip('torch')
  from padam_jax.reference.models import get_torch_model

  torch.manual_seed(0)
  module = get_torch_model('wrn16_4', width=SMALL_WIDTH)
  weight = module.stage3_block2.conv2.weight.detach().numpy()
  std = math.sqrt(2 / (3 * 3 * 32))
  assert abs(weight.std() / std - 1) < 0.05
  vgg = get_torch_model('vgg16', width=SMALL_WIDTH)
  assert vgg.conv2.weight.abs().max().item() <= 1 / math.sqrt(3 * 3 * 8)


def test_flax_to_torch_rejects_mismatched_structure(small_variables):
  pytest.importorskip('torch')
  from padam_jax.reference.convert import flax_to_torch
  from padam_jax.reference.models import get_torch_model

  with pytest.raises(ValueError, match='do not match'):
    flax_to_torch(small_variables['resnet18'], get_torch_model('wrn16_4', width=SMALL_WIDTH))
  with pytest.raises(ValueError, match='Shape mismatch'):
    flax_to_torch(small_variables['vgg16'], get_torch_model('vgg16', width=0.25))


@pytest.mark.parametrize('shape', [(2, 8, 8, 3), (2, 5, 7, 2)])
def test_max_pool_2x2_matches_pytorch(shape):
  """Values and gradients of the reshape max-pool equal PyTorch's max_pool2d(2, 2)."""
  torch = pytest.importorskip('torch')
  from padam_jax.models.layers import max_pool_2x2

  x = np.asarray(jax.random.normal(jax.random.key(0), shape), np.float32)
  weights = np.asarray(jax.random.normal(jax.random.key(1), max_pool_2x2(x).shape))
  value, grad = jax.value_and_grad(lambda v: (max_pool_2x2(v) * weights).sum())(x)
  xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
  out = torch.nn.functional.max_pool2d(xt, 2, 2)
  (out * torch.tensor(weights.transpose(0, 3, 1, 2))).sum().backward()
  np.testing.assert_allclose(max_pool_2x2(x), out.detach().numpy().transpose(0, 2, 3, 1))
  np.testing.assert_allclose(grad, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-6)
