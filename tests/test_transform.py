"""scale_by_padam / padam: limits, options, argument checks, dtypes and composition."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import padam_jax
from padam_jax.transform import fractional_power


def _tree(seed=0, dtype=jnp.float32):
  k1, k2 = jax.random.split(jax.random.key(seed))
  return {
    'kernel': jax.random.normal(k1, (3, 4), dtype),
    'bias': jax.random.normal(k2, (4,), dtype),
  }


def _grads(params, t):
  """Parameter-dependent gradients, different at each step ``t``."""
  return jax.tree.map(lambda p: jnp.sin(p * (t + 1)) + 0.1 * p, params)


def _run(tx, params, steps=5):
  state = tx.init(params)
  for t in range(steps):
    updates, state = tx.update(_grads(params, t), state, params)
    params = optax.apply_updates(params, updates)
  return params, state


# --- numerics of single pieces ---------------------------------------------


@pytest.mark.parametrize(
  'exponent', [0.0, 1.0, 0.5, 0.25, 0.125, 1 / 64, 0.3, 0.7, -1.0, -0.5, -0.25, -1 / 64, -0.3]
)
@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_fractional_power_matches_pow(exponent, dtype):
  x = jnp.geomspace(1e-6, 1e3, 101).astype(dtype)
  got = fractional_power(x, exponent)
  want = np.asarray(x, np.float64) ** exponent
  assert got.dtype == dtype
  rtol = 1e-5 if dtype == jnp.float32 else 2e-2
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol)


def test_fractional_power_traced_exponent():
  x = jnp.asarray([0.5, 2.0, 9.0])
  got = jax.jit(fractional_power)(x, 0.25)
  np.testing.assert_allclose(got, np.asarray(x) ** 0.25, rtol=1e-6)


def test_first_step_formula():
  """One step by hand: authors' square-root bias correction, eps inside the power."""
  g = jnp.asarray([0.3, -2.0, 1e-3])
  tx = padam_jax.scale_by_padam(b1=0.9, b2=0.999, partial=0.125, eps=1e-8)
  out, state = tx.update(g, tx.init(g))
  m, v = 0.1 * np.asarray(g), 0.001 * np.asarray(g) ** 2
  want = np.sqrt(1 - 0.999) / (1 - 0.9) * m / (np.sqrt(v) + 1e-8) ** 0.25
  np.testing.assert_allclose(out, want, rtol=1e-6)
  np.testing.assert_allclose(state.nu_max, v, rtol=1e-6)
  assert int(state.count) == 1


def test_eps_is_inside_the_power():
  """Zero gradients history: the denominator floors at eps ** (2p), not eps."""
  tx = padam_jax.scale_by_padam(partial=0.125, eps=1e-8, b2=0.999)
  tiny = jnp.asarray([1e-30])
  out, _ = tx.update(tiny, tx.init(tiny))
  denom = (np.sqrt(0.001 * 1e-60) + 1e-8) ** 0.25
  np.testing.assert_allclose(out, np.sqrt(0.001) / 0.1 * 0.1e-30 / denom, rtol=1e-5)


def test_max_is_over_raw_second_moment():
  """A large gradient then small ones: nu_max keeps the raw peak."""
  tx = padam_jax.scale_by_padam()
  g = jnp.asarray([1.0])
  state = tx.init(g)
  _, state = tx.update(g * 10, state)
  _, state = tx.update(g * 0.01, state)
  assert float(state.nu_max[0]) == pytest.approx(0.001 * 100, rel=1e-6)
  assert float(state.nu[0]) < float(state.nu_max[0])


@pytest.mark.parametrize('exact', [False, True])
def test_p_zero_is_bias_corrected_heavy_ball(exact):
  """p = 0: the update is c_t * mu with c_t = sqrt(1 - b2^t)/(1 - b1^t) (or 1/(1 - b1^t))."""
  params = _tree()
  tx = padam_jax.padam(0.1, partial=0.0, exact_bias_correction=exact)
  state = tx.init(params)
  mu = jax.tree.map(jnp.zeros_like, params)
  for t in range(1, 6):
    grads = _grads(params, t)
    updates, state = tx.update(grads, state, params)
    mu = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, mu, grads)
    c = (1.0 if exact else np.sqrt(1 - 0.999**t)) / (1 - 0.9**t)
    chex.assert_trees_all_close(updates, jax.tree.map(lambda m, c=c: -0.1 * c * m, mu), rtol=1e-5)


def test_p_half_exact_bias_is_amsgrad_up_to_eps():
  params = _tree()
  ours, _ = _run(padam_jax.padam(1e-2, partial=0.5, eps=0.0), params)
  torch_style, _ = _run(padam_jax.amsgrad(1e-2, eps=0.0), params)
  chex.assert_trees_all_close(ours, torch_style, rtol=1e-5)


def test_amsgrad_false_has_no_max_state():
  params = _tree()
  tx = padam_jax.scale_by_padam(amsgrad=False)
  state = tx.init(params)
  assert state.nu_max is None
  _, state = tx.update(_grads(params, 0), state)
  assert state.nu_max is None
  assert isinstance(state, padam_jax.ScaleByPadamState)


def test_exact_bias_correction_differs_early_and_converges():
  g = jnp.ones(2)
  sqrt_tx = padam_jax.scale_by_padam(partial=0.125)
  exact_tx = padam_jax.scale_by_padam(partial=0.125, exact_bias_correction=True)
  sqrt_out, _ = sqrt_tx.update(g, sqrt_tx.init(g))
  exact_out, _ = exact_tx.update(g, exact_tx.init(g))
  # Ratio (1 - b2)^(1/2 - p) at t = 1: the implicit warm-up of the reference.
  np.testing.assert_allclose(sqrt_out / exact_out, 0.001**0.375, rtol=1e-5)


def test_partial_schedule_uses_the_step_count():
  """The p of update k is schedule(k), k counted from 0 as optax schedules are."""
  schedule = lambda count: jnp.where(count < 1, 0.25, 0.0625)  # noqa: E731
  g = jnp.asarray([0.5, -1.5])
  tx = padam_jax.scale_by_padam(partial=schedule, eps=0.0)
  state = tx.init(g)
  out1, state = tx.update(g, state)
  out2, state = tx.update(g, state)
  m2, v2 = np.asarray(state.mu), np.asarray(state.nu_max)
  c2 = np.sqrt(1 - 0.999**2) / (1 - 0.9**2)
  np.testing.assert_allclose(out2, c2 * m2 / np.sqrt(v2) ** 0.125, rtol=1e-5)
  c1 = np.sqrt(0.001) / 0.1
  np.testing.assert_allclose(
    out1, c1 * 0.1 * np.asarray(g) / np.sqrt(0.001 * np.asarray(g) ** 2) ** 0.5, rtol=1e-5
  )


def test_learning_rate_schedule():
  params = _tree()
  const, _ = _run(padam_jax.padam(0.05), params)
  sched, _ = _run(padam_jax.padam(optax.constant_schedule(0.05)), params)
  chex.assert_trees_all_close(const, sched)


# --- argument checks ---------------------------------------------------------


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(partial=-0.01), 'partial'),
    (dict(partial=0.51), 'partial'),
    (dict(partial=float('nan')), 'partial'),
    (dict(b1=1.0), 'b1'),
    (dict(b1=-0.1), 'b1'),
    (dict(b2=1.0), 'b2'),
    (dict(eps=-1e-8), 'eps'),
    (dict(weight_decay=-1e-4), 'weight_decay'),
    (dict(learning_rate=-0.1), 'learning_rate'),
  ],
)
def test_invalid_concrete_values_raise(kwargs, name):
  kwargs = {'learning_rate': 0.1, **kwargs}
  with pytest.raises(ValueError, match=name):
    padam_jax.padam(**kwargs)


def test_boundary_values_are_valid():
  padam_jax.padam(0.1, partial=0.0, b1=0.0, b2=0.0, eps=0.0, weight_decay=0.0)
  padam_jax.padam(0.1, partial=0.5)
  with pytest.raises(ValueError, match='partial'):
    padam_jax.scale_by_padam(partial=jnp.asarray(0.75))


def test_traced_values_are_not_checked():
  g = jnp.ones(3)

  @jax.jit
  def update(p):
    tx = padam_jax.scale_by_padam(partial=p)
    return tx.update(g, tx.init(g))[0]

  assert update(0.75).shape == (3,)  # out of range, but traced: no error


def test_unknown_optimizer_name_lists_choices():
  with pytest.raises(ValueError, match='padamw'):
    padam_jax.get_optimizer('padam2', learning_rate=0.1)
  assert set(padam_jax.OPTIMIZERS) == {'padam', 'padamw', 'sgdm', 'adam', 'amsgrad', 'adamw'}


# --- dtypes and tree structure ----------------------------------------------


@pytest.mark.parametrize('dtype', [jnp.bfloat16, jnp.float16, jnp.float32])
def test_updates_keep_parameter_dtype(dtype):
  params = _tree(dtype=dtype)
  tx = padam_jax.padam(0.1, weight_decay=5e-4)
  state = tx.init(params)
  updates, state = tx.update(_grads(params, 0), state, params)
  chex.assert_trees_all_equal_dtypes(updates, params)
  padam_state = state[1]
  assert all(
    x.dtype == jnp.promote_types(dtype, jnp.float32) for x in jax.tree.leaves(padam_state.nu_max)
  )


def test_complex_parameter_gets_a_real_second_moment_per_part():
  """As PyTorch (view_as_real): Re g and Im g each have their own nu; mu stays complex."""
  g = jnp.asarray([1j, 2 - 1j], jnp.complex64)
  as_real = jnp.stack([g.real, g.imag], axis=-1)
  tx = padam_jax.scale_by_padam(mu_dtype=jnp.bfloat16)
  out, state = tx.update(g, tx.init(g))
  assert state.mu.dtype == jnp.complex64  # mu_dtype widened to a complex type
  assert state.nu.dtype == state.nu_max.dtype == jnp.float32
  np.testing.assert_allclose(state.nu, 0.001 * np.asarray([[0, 1], [4, 1]]), rtol=1e-6)
  np.testing.assert_allclose(state.nu_max, state.nu)
  real_out, _ = tx.update(as_real, tx.init(as_real))
  assert out.dtype == jnp.complex64
  np.testing.assert_allclose(out, real_out[:, 0] + 1j * real_out[:, 1], rtol=1e-6)


def test_bf16_second_moment_still_decays():
  """nu kept in float32: with bf16 storage b2 = 0.999 would round to 1."""
  tx = padam_jax.scale_by_padam()
  p = jnp.ones(2, jnp.bfloat16)
  state = tx.init(p)
  _, state = tx.update(p, state)
  for _ in range(20):
    _, state = tx.update(jnp.zeros_like(p), state)
  assert float(state.nu[0]) < 0.001 * 0.999**10


def test_mu_dtype():
  params = _tree()
  tx = padam_jax.padam(0.1, mu_dtype=jnp.bfloat16)
  _, state = _run(tx, params, steps=2)
  assert all(m.dtype == jnp.bfloat16 for m in jax.tree.leaves(state[1].mu))


def test_none_leaves_pass_through():
  params = {'w': jnp.ones(3), 'frozen': None}
  tx = padam_jax.padam(0.1, weight_decay=1e-3)
  state = tx.init(params)
  updates, _ = tx.update({'w': jnp.ones(3), 'frozen': None}, state, params)
  assert updates['frozen'] is None
  assert updates['w'].shape == (3,)


@pytest.mark.parametrize('name', ['padam', 'sgdm', 'adam', 'amsgrad'])
def test_no_params_needed_without_weight_decay(name):
  tx = padam_jax.get_optimizer(name, learning_rate=0.1)
  g = {'w': jnp.ones(3)}
  updates, _ = tx.update(g, tx.init(g))  # no params: like optax.adam
  assert updates['w'].shape == (3,)


def test_weight_decay_mask():
  params = _tree()
  mask = {'kernel': True, 'bias': False}
  masked, _ = _run(padam_jax.padam(0.1, weight_decay=0.1, mask=mask), params)
  decayed, _ = _run(padam_jax.padam(0.1, weight_decay=0.1), params)
  plain, _ = _run(padam_jax.padam(0.1), params)
  chex.assert_trees_all_close(masked['kernel'], decayed['kernel'])
  chex.assert_trees_all_close(masked['bias'], plain['bias'])
  assert not np.allclose(decayed['bias'], plain['bias'])


def test_padamw_decay_is_decoupled():
  """padamw: theta <- theta - lr * (padam direction + wd * theta)."""
  params = _tree()
  grads = _grads(params, 0)
  direction, _ = padam_jax.scale_by_padam().update(grads, padam_jax.scale_by_padam().init(params))
  tx = padam_jax.padamw(0.1, weight_decay=0.01)
  updates, _ = tx.update(grads, tx.init(params), params)
  want = jax.tree.map(lambda d, p: -0.1 * (d + 0.01 * p), direction, params)
  chex.assert_trees_all_close(updates, want, rtol=1e-6)


# --- composition --------------------------------------------------------------


class JitTest(chex.TestCase):
  @chex.variants(with_jit=True, without_jit=True)
  def test_jit_and_eager_agree(self):
    params = _tree()
    tx = padam_jax.padam(0.1, weight_decay=5e-4)
    update = self.variant(tx.update)
    state = tx.init(params)
    for t in range(3):
      updates, state = update(_grads(params, t), state, params)
      params = optax.apply_updates(params, updates)
    reference, _ = _run(tx, _tree(), steps=3)
    chex.assert_trees_all_close(params, reference, rtol=1e-6)


def test_inject_hyperparams_vmap_over_p_and_lr_grid():
  """K optimizers in one program: (p, lr) as arrays, vmapped over the state."""
  ps = jnp.asarray([0.0625, 0.125, 0.25, 0.5])
  lrs = jnp.asarray([0.1, 0.05, 0.01, 0.001])
  params = _tree()
  make = optax.inject_hyperparams(padam_jax.padam)

  def run_one(p, lr):
    tx = make(learning_rate=lr, partial=p, weight_decay=5e-4)
    state = tx.init(params)
    x = params
    for t in range(4):
      updates, state = tx.update(_grads(x, t), state, x)
      x = optax.apply_updates(x, updates)
    return x

  batched = jax.jit(jax.vmap(run_one))(ps, lrs)
  for k in range(len(ps)):
    single, _ = _run(
      padam_jax.padam(float(lrs[k]), partial=float(ps[k]), weight_decay=5e-4), params, steps=4
    )
    chex.assert_trees_all_close(
      jax.tree.map(lambda x, k=k: x[k], batched), single, rtol=2e-5, atol=1e-6
    )


def test_inject_hyperparams_state_exposes_values():
  tx = optax.inject_hyperparams(padam_jax.padam)(
    learning_rate=0.1, partial=0.125, weight_decay=5e-4
  )
  state = tx.init(_tree())
  state.hyperparams['partial'] = jnp.asarray(0.25)
  params = _tree()
  updates, _ = tx.update(_grads(params, 0), state, params)
  want, _ = padam_jax.padam(0.1, partial=0.25, weight_decay=5e-4).update(
    _grads(params, 0), padam_jax.padam(0.1).init(params), params
  )
  chex.assert_trees_all_close(updates, want, rtol=1e-5)


def test_chain_with_clipping():
  params = _tree()
  tx = optax.chain(optax.clip_by_global_norm(0.1), padam_jax.padam(0.1))
  big = jax.tree.map(lambda p: 100 * jnp.ones_like(p), params)
  clipped = optax.clip_by_global_norm(0.1).update(big, optax.EmptyState())[0]
  got, _ = tx.update(big, tx.init(params), params)
  want, _ = padam_jax.padam(0.1).update(clipped, padam_jax.padam(0.1).init(params), params)
  chex.assert_trees_all_close(got, want)


def test_multisteps_averages_micro_batches():
  params = _tree()
  tx = optax.MultiSteps(padam_jax.padam(0.1, weight_decay=1e-3), every_k_schedule=2)
  state = tx.init(params)
  g0, g1 = _grads(params, 0), _grads(params, 1)
  first, state = tx.update(g0, state, params)
  assert all(float(jnp.abs(u).max()) == 0 for u in jax.tree.leaves(first))
  second, _ = tx.update(g1, state, params)
  mean = jax.tree.map(lambda a, b: (a + b) / 2, g0, g1)
  inner = padam_jax.padam(0.1, weight_decay=1e-3)
  want, _ = inner.update(mean, inner.init(params), params)
  chex.assert_trees_all_close(second, want, rtol=1e-6)


@pytest.mark.parametrize('name', sorted(padam_jax.OPTIMIZERS))
def test_every_registered_optimizer_descends(name):
  """On a quadratic bowl each optimizer lowers the loss and keeps dtypes."""
  lr = {'adam': 0.05, 'amsgrad': 0.05, 'adamw': 0.05}.get(name, 0.05)
  tx = padam_jax.get_optimizer(name, learning_rate=lr)
  params = {'x': jnp.full((4,), 3.0)}
  loss = lambda p: jnp.sum(p['x'] ** 2)  # noqa: E731
  state = tx.init(params)
  for _ in range(50):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, updates)
  assert float(loss(params)) < 0.5 * 36
