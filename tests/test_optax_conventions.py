"""Every registered optimizer against the tests optax runs over its own optimizers.

Parametrised over ``padam_jax.OPTIMIZERS``: an optimizer added there is checked too.
Two parts, one place:

- ``TestOptaxSharedOptimizerTests`` is optax's own ``contrib/_common_test.py`` (its
  ``ContribTest``: extra arguments, no recompilation, the parabola and Rosenbrock
  problems, ``tree.map_params``, ``inject_hyperparams``, dtypes, ``MultiSteps``,
  learning-rate schedules) with our registry in place of optax's optimizers;
- the tests below it cover what those leave out: complex parameters, float16 to
  complex128 in one tree, and ``MultiSteps``'s k-th step.

Complex gradients are conjugated before the update (``dL/dRe + i dL/dIm``, PyTorch's
``.grad``), so that adding the update descends. To stay cheap on two cores, tests
share compiled programs where the property allows (``_probe``) and each runs its
steps inside one compiled loop.
"""

import functools
import importlib.util
import os
import types
from collections.abc import Callable
from typing import Any
from unittest import mock

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import padam_jax

parameterized = pytest.importorskip('absl.testing.parameterized')

NAMES = sorted(padam_jax.OPTIMIZERS)

# Hyperparameters per optimizer; one added to the registry gets DEFAULT_KWARGS. Across
# Rosenbrock's valley the curvature is ~1000: SGD with momentum diverges above lr ~4e-3,
# Padam's step grows with the gradient's scale for p < 1/2 (at 0.1 it does not reach the
# minimum in float32 and diverges in complex64), and Adam at 0.1 ends a few 1e-2 from
# the complex minimum. The small weight decay keeps the decay step in every check and
# moves the minimisers by less than 1e-3.
KWARGS: dict[str, dict[str, Any]] = {
  'padam': dict(learning_rate=1e-2, weight_decay=1e-4),
  'padamw': dict(learning_rate=1e-2, weight_decay=1e-4),
  'sgdm': dict(learning_rate=1e-3, weight_decay=1e-4),
  'adam': dict(learning_rate=1e-2, weight_decay=1e-4),
  'amsgrad': dict(learning_rate=1e-2, weight_decay=1e-4),
  'adamw': dict(learning_rate=1e-2, weight_decay=1e-4),
}
DEFAULT_KWARGS: dict[str, Any] = dict(learning_rate=1e-2)
STEPS = 10_000
TOLERANCE = 1e-2  # largest |x - x*| accepted after STEPS steps

SINGLE = (jnp.float16, jnp.bfloat16, jnp.float32, jnp.complex64)
DOUBLE = (jnp.float64, jnp.complex128)  # under jax.enable_x64


def _registry_cases() -> list[dict[str, Any]]:
  """Our optimizers in the form of optax's lists of optimizers under test."""
  return [
    dict(
      opt_name=name,
      opt_kwargs=KWARGS.get(name, DEFAULT_KWARGS),
      wrapper_name=None,
      wrapper_kwargs=None,
    )
    for name in NAMES
  ]


def _is_optimizer_list(cases: Any) -> bool:
  return (
    isinstance(cases, (list, tuple))
    and bool(cases)
    and all(isinstance(case, dict) and 'opt_name' in case for case in cases)
  )


def _optax_common_tests() -> types.ModuleType:
  """optax's ``contrib/_common_test.py``, loaded afresh with our registry under test.

  The module builds its test grid when imported, ``parameterized.product`` over its
  module-level lists of optimizers, so it is executed again under another name while
  ``product`` receives ``_registry_cases()`` in place of each of those lists; its
  ``_get_opt_factory`` then looks the names up in ``padam_jax.OPTIMIZERS`` (``adam``
  there is ours, not optax's).
  """
  path = os.path.join(os.path.dirname(optax.__file__), 'contrib', '_common_test.py')
  if not os.path.exists(path):
    raise FileNotFoundError(
      f'optax {optax.__version__} has no {path}: the shared '
      'optimizer tests moved; update _optax_common_tests'
    )
  spec = importlib.util.spec_from_file_location('padam_optax_common_test', path)
  assert spec is not None and spec.loader is not None, path
  module = importlib.util.module_from_spec(spec)
  product = parameterized.product

  def product_over_registry(*kwargs_seqs, **testgrid):
    return product(
      *(_registry_cases() if _is_optimizer_list(seq) else seq for seq in kwargs_seqs), **testgrid
    )

  with mock.patch.object(parameterized, 'product', product_over_registry):
    spec.loader.exec_module(module)
  module.__dict__['_get_opt_factory'] = padam_jax.OPTIMIZERS.__getitem__
  return module


_CONTRIB_TEST: Any = _optax_common_tests().ContribTest


class TestOptaxSharedOptimizerTests(_CONTRIB_TEST):
  """optax's ``ContribTest``, every case over ``padam_jax.OPTIMIZERS`` (see above)."""


def _make(
  name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]] = lambda f: f
) -> optax.GradientTransformation:
  return wrap(padam_jax.OPTIMIZERS[name])(**KWARGS.get(name, DEFAULT_KWARGS))


def _abs_sq(x: jax.Array) -> jax.Array:
  return jnp.real(x * jnp.conj(x))


def _parabola(dtype) -> tuple[jax.Array, jax.Array, Callable[[jax.Array], jax.Array]]:
  """``sum |x - x*|^2`` from (-1, 10, 1); x* = (1, -1, 1), times (1 + i) if complex."""
  scale = 1 + 1j if jnp.issubdtype(dtype, jnp.complexfloating) else 1.0
  target = jnp.asarray(np.array([1.0, -1.0, 1.0]) * scale, dtype)
  return (jnp.asarray([-1.0, 10.0, 1.0], dtype), target, lambda x: jnp.sum(_abs_sq(x - target)))


def _rosenbrock(dtype) -> tuple[jax.Array, jax.Array, Callable[[jax.Array], jax.Array]]:
  """``|a - x0|^2 + 100 |x1 - x0^2|^2`` from 0; a = 1, or 1 + i if complex; x* = (a, a^2)."""
  a = 1 + 1j if jnp.issubdtype(dtype, jnp.complexfloating) else 1.0
  return (
    jnp.zeros(2, dtype),
    jnp.asarray([a, a * a], dtype),
    lambda x: _abs_sq(a - x[0]) + 100 * _abs_sq(x[1] - x[0] ** 2),
  )


def _descent_grads(loss, params):
  return jax.tree.map(jnp.conj, jax.grad(loss)(params))


def _mixed_params(dtypes) -> dict[str, jax.Array]:
  """One parabola start per dtype, keyed by the dtype's name."""
  return {jnp.dtype(d).name: _parabola(d)[0] for d in dtypes}


def _mixed_loss(params) -> jax.Array:
  return sum((_parabola(x.dtype)[2](x).astype(float) for x in params.values()), jnp.zeros(()))


@functools.cache
def _optimizer(name: str) -> optax.GradientTransformation:
  return _make(name)


@functools.cache
def _case(precision: str) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
  """One parabola leaf per dtype (SINGLE, or DOUBLE under x64) and its descent gradients."""
  with jax.enable_x64(precision == 'double'):
    params = _mixed_params(SINGLE if precision == 'single' else DOUBLE)
    return params, jax.jit(functools.partial(_descent_grads, _mixed_loss))(params)


@functools.cache
def _probe(name: str, precision: str) -> dict[str, Any]:
  """Two jitted updates of ``_case(precision)``, which several tests below inspect.

  Each passes ``update`` unknown keywords (optax's ``with_extra_args_support``
  convention) and picks the new state with ``lax.cond`` against the old one, which
  only type-checks if the state kept its shapes and dtypes; the second call starts
  from the first one's state and must reuse its compiled program.
  """
  tx = _optimizer(name)
  params, grads = _case(precision)
  traces = []

  @jax.jit
  def step(params, state, take):  # `take` is True, but only known at run time
    traces.append(None)
    updates, new_state = tx.update(
      grads, state, params, unexpected_array=jnp.ones(2), unexpected_flag=True
    )
    return updates, jax.lax.cond(take, lambda: new_state, lambda: state)

  with jax.enable_x64(precision == 'double'):
    init = tx.init(params)
    updates, state = step(params, init, True)
    second_updates, second_state = step(optax.apply_updates(params, updates), state, True)
  return dict(
    params=params,
    grads=grads,
    init=init,
    updates=updates,
    state=state,
    second_updates=second_updates,
    second_state=second_state,
    traces=len(traces),
  )


def _wide(x: jax.Array) -> np.ndarray:
  return np.asarray(x.astype(jnp.promote_types(x.dtype, jnp.float32)))


def _assert_close(actual, desired, rtol: float) -> None:
  """Same structure and dtypes; values within ``rtol`` or two units in each leaf's last place."""
  chex.assert_trees_all_equal_structs(actual, desired)
  chex.assert_trees_all_equal_dtypes(actual, desired)
  for (path, a), d in zip(
    jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(desired), strict=True
  ):
    eps = float(jnp.finfo(a.dtype).eps) if jnp.issubdtype(a.dtype, jnp.inexact) else 0.0
    np.testing.assert_allclose(
      _wide(a), _wide(d), rtol=max(rtol, 2 * eps), atol=1e-9, err_msg=jax.tree_util.keystr(path)
    )


@pytest.mark.parametrize('name', NAMES)
def test_solves_complex_parabola_and_rosenbrock_without_recompiling(name):
  """optax's problems in complex64 (its own run float32 only), side by side (disjoint
  leaves, summed objectives), STEPS steps in one compiled loop. The loop runs one step, then
  the rest from the state that step returned: a second trace (a state whose dtypes or weak
  types drift) fails the test.
  """
  tx = _optimizer(name)
  problems = {'parabola': _parabola(jnp.complex64), 'rosenbrock': _rosenbrock(jnp.complex64)}
  loss = lambda x: sum(f(x[k]) for k, (_, _, f) in problems.items())  # noqa: E731
  traces = []

  def step(_, carry):
    params, state = carry
    updates, state = tx.update(_descent_grads(loss, params), state, params)
    return optax.apply_updates(params, updates), state

  @jax.jit
  def run(params, state, steps):
    traces.append(steps)
    return jax.lax.fori_loop(0, steps, step, (params, state))

  params = {k: start for k, (start, _, _) in problems.items()}
  params, _ = run(*run(params, tx.init(params), 1), STEPS - 1)
  assert len(traces) == 1, 'the state an update returns differs in type from the initial one'
  for key, (_, target, _) in problems.items():
    error = float(jnp.max(jnp.abs(params[key] - target)))
    assert error < TOLERANCE, f'{key}: |x - x*| = {error:.3g} after {STEPS} steps'


@pytest.mark.parametrize('name', NAMES)
def test_map_params_over_state(name):
  """``optax.tree.map_params`` finds a moment per leaf of a float16-to-complex64 tree and
  rebuilds the state (optax's own maps a float32 state without counting)."""
  tx = _optimizer(name)
  params = _mixed_params(SINGLE)
  state = tx.init(params)
  seen = []
  mapped = optax.tree.map_params(tx, lambda x: seen.append(x) or x, state)
  assert len(seen) >= len(params)  # at least one moment per parameter leaf
  assert jax.tree.structure(mapped) == jax.tree.structure(state)
  chex.assert_trees_all_equal(mapped, state)


@pytest.mark.parametrize('name', NAMES)
def test_inject_hyperparams_gives_the_same_update_and_state(name):
  """Every numeric hyperparameter traced, cast by optax to the tree's widest dtype
  (complex64 here; optax's own is float32 only); the result matches the plain
  optimizer's first step."""
  injected = _make(name, optax.inject_hyperparams)
  probe = _probe(name, 'single')
  params, grads = probe['params'], probe['grads']
  updates, state = jax.jit(injected.update)(grads, injected.init(params), params)
  # Injected b2 = 0.999 is a float32 array, 0.99900001: 1 - b2 moves by 1.3e-5.
  _assert_close((updates, state.inner_state), (probe['updates'], probe['state']), rtol=1e-4)


@pytest.mark.parametrize('precision', ['single', 'double'])
@pytest.mark.parametrize('name', NAMES)
def test_updates_keep_the_gradient_dtype(name, precision):
  """float16 to complex128 in one tree (optax's own: bfloat16 and float32 apart)."""
  probe = _probe(name, precision)
  chex.assert_trees_all_equal_dtypes(probe['updates'], probe['grads'])
  chex.assert_trees_all_equal_dtypes(probe['second_updates'], probe['grads'])
  chex.assert_tree_all_finite(probe['updates'])


@pytest.mark.parametrize('precision', ['single', 'double'])
@pytest.mark.parametrize('name', NAMES)
def test_state_keeps_shapes_and_dtypes_under_cond(name, precision):
  """float16 to complex128 (see ``_probe``); the second update compiles nothing new."""
  probe = _probe(name, precision)
  chex.assert_trees_all_equal_shapes_and_dtypes(probe['state'], probe['init'])
  chex.assert_trees_all_equal_shapes_and_dtypes(probe['second_state'], probe['init'])
  assert probe['traces'] == 1


@pytest.mark.parametrize('name', NAMES)
def test_multisteps_accumulates_safely(name):
  """``optax.MultiSteps``: zero updates (in the gradient's dtype) until the k-th
  micro-step, which equals the inner update on the (here constant) mean gradient;
  one compiled micro-step serves all k.

  Its default float32 accumulator would drop imaginary parts, so the complex leaf
  is accumulated apart with a complex accumulator, as docs/semantics.md advises.
  """
  k = 4
  tx = _optimizer(name)
  groups = [_mixed_params((jnp.bfloat16, jnp.float32)), _mixed_params((jnp.complex64,))]
  multis = [
    optax.MultiSteps(tx, every_k_schedule=k, accumulator_dtype=dtype)
    for dtype in (jnp.float32, jnp.complex64)
  ]
  traces = []

  @jax.jit
  def micro_step(states):
    traces.append(None)
    results = []
    for params, state, multi in zip(groups, states, multis, strict=True):
      grads = _descent_grads(_mixed_loss, params)
      updates, state = multi.update(grads, state, params)
      results.append((grads, updates, state, tx.update(grads, tx.init(params), params)[0]))
    return results

  states = [multi.init(params) for multi, params in zip(multis, groups, strict=True)]
  for step in range(k):
    results = micro_step(states)
    states = [state for _, _, state, _ in results]
    for grads, updates, _, want in results:
      chex.assert_trees_all_equal_dtypes(updates, grads)
      if step < k - 1:
        chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, grads))
      else:
        _assert_close(updates, want, rtol=1e-6)
        assert all(float(jnp.abs(u).max()) > 0 for u in jax.tree.leaves(updates))
  assert len(traces) == 1
