"""The module proposed to optax (contrib/optax/_padam.py) computes padam_jax's updates.

contrib/optax/check.sh runs optax's own tests on it inside a copy of optax; here it is
loaded from its file, beside the installed optax, and compared with
``padam_jax.scale_by_padam`` step by step.
"""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

import padam_jax

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 100
PARTIALS = (0.125, 0.25)


def _upstream():
  spec = importlib.util.spec_from_file_location(
    'optax_contrib_padam', ROOT / 'contrib' / 'optax' / '_padam.py'
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _gradients(params, t):
  """Random gradients whose scale rises and falls, so that the maximum of ``nu`` matters."""
  key = jax.random.fold_in(jax.random.key(0), t)
  scale = jnp.exp(jnp.sin(0.3 * t))
  return jax.tree.map(lambda x: scale * jax.random.normal(key, x.shape, x.dtype), params)


def test_upstream_module_agrees_with_scale_by_padam():
  """100 float32 steps with amsgrad at p = 1/8 and 1/4: updates within 1e-7 of each other.

  The updates stay below 1, so 1e-7 is two units in float32's last place: what separates
  ``(sqrt(v) + eps) ** (-2p)`` through XLA's ``pow`` (upstream) from the chain of square
  roots ending in ``rsqrt`` of ``padam_jax.fractional_power``. Each runs in one compiled loop.
  """
  upstream = _upstream()
  params = {'w': jnp.zeros((3, 4), jnp.float32), 'b': jnp.zeros(5, jnp.float32)}
  optimizers = {
    (p, side): tx
    for p in PARTIALS
    for side, tx in (
      ('ours', padam_jax.scale_by_padam(partial=p, amsgrad=True)),
      ('upstream', upstream.scale_by_padam(partial=p, amsgrad=True)),
    )
  }

  @jax.jit
  def run():
    def step(states, t):
      grads = _gradients(params, t)
      out = {k: tx.update(grads, states[k]) for k, tx in optimizers.items()}
      return {k: o[1] for k, o in out.items()}, {k: o[0] for k, o in out.items()}

    initial = {k: tx.init(params) for k, tx in optimizers.items()}
    return jax.lax.scan(step, initial, jnp.arange(STEPS))

  states, updates = run()  # updates: each leaf with a leading axis of STEPS
  for p in PARTIALS:
    ours, theirs = states[p, 'ours'], states[p, 'upstream']
    for key in params:
      assert float(jnp.max(jnp.abs(updates[p, 'ours'][key]))) < 1, key
      difference = float(jnp.max(jnp.abs(updates[p, 'ours'][key] - updates[p, 'upstream'][key])))
      assert difference <= 1e-7, f'p={p} {key}: updates differ by {difference:.3g}'
      for name in ('mu', 'nu', 'nu_max'):
        np.testing.assert_allclose(
          getattr(ours, name)[key], getattr(theirs, name)[key], rtol=1e-6, err_msg=name
        )
      # The maximum was active: nu fell below its earlier maximum somewhere.
      assert bool(jnp.any(ours.nu_max[key] > ours.nu[key])), key
    assert int(ours.count) == int(theirs.count) == STEPS
