"""Every registered optimizer's state takes the parameters' sharding and keeps it.

The suite's process has 2 host devices, so one child process with 8 runs two checks over
``padam_jax.OPTIMIZERS``:

- ours: a mesh of 4 devices and parameters sharded ``P('d')`` (float32, bfloat16, complex64)
  or replicated, with and without ``mu_dtype``. At init each moment has its parameter's
  sharding (a complex parameter's ``nu``, split into real and imaginary parts, too); under
  ``jax.set_mesh`` two jitted updates compile once and return states of the initial types,
  shardings included;
- optax's own sharding tests (``optax/_src/sharding_test.py``, in its wheel; the newest optax
  also has ``contrib/_sharding_test.py``, whose one test is
  ``test_state_sharding_type_init_match_update`` here) with our registry in place of its
  optimizers, as tests/test_optax_conventions.py runs its common tests.
"""

import inspect
import os
import re
import sys
import types
import unittest
from unittest import mock

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import padam_jax
from padam_jax.distributed import hosts

DEVICES = 8  # optax's sharding tests build a mesh of 8
MESH_DEVICES = 4
_SUMMARY = re.compile(r'optax sharding tests: (\d+) run, (\d+) skipped')


def test_state_takes_and_keeps_the_parameters_sharding():
  from conftest import (  # imported here, not in the child process
    run_python,
    subprocess_env,
  )

  environ = {k: v for k, v in subprocess_env().items() if k != hosts.THREAD_POOL_VARIABLE}
  environ['XLA_FLAGS'] = '--xla_backend_optimization_level=0'
  environ.update(hosts.host_environment(environ, device_count=DEVICES))
  result = run_python('-m', 'tests.test_sharding', env=environ)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  run, skipped = map(int, _SUMMARY.search(result.stdout).groups())
  assert (run, skipped) == (3 * len(padam_jax.OPTIMIZERS), 0), result.stdout


def _optimizers() -> dict[str, optax.GradientTransformation]:
  """Each registered optimizer, and again with a bfloat16 first moment where it has one."""
  optimizers = {}
  for name, factory in sorted(padam_jax.OPTIMIZERS.items()):
    optimizers[name] = factory(learning_rate=0.1)
    if 'mu_dtype' in inspect.signature(factory).parameters:
      optimizers[f'{name}(mu_dtype=bfloat16)'] = factory(learning_rate=0.1, mu_dtype=jnp.bfloat16)
  return optimizers


def _parameter_key(path) -> str | None:
  """The parameter a state leaf belongs to: the last dict key of its path (none for a count)."""
  keys = [entry.key for entry in path if isinstance(entry, jax.tree_util.DictKey)]
  return keys[-1] if keys else None


def _assert_equivalent(new, old, label: str) -> None:
  pairs = zip(jax.tree_util.tree_leaves_with_path(new), jax.tree.leaves(old), strict=True)
  for (path, a), b in pairs:
    assert a.sharding.is_equivalent_to(b.sharding, a.ndim), (
      f'{label} {jax.tree_util.keystr(path)}: {a.sharding} != {b.sharding}'
    )


def _check_registry() -> None:
  """Init gives each moment its parameter's sharding; under ``jax.set_mesh`` two jitted
  updates (of every optimizer at once, one program) compile once and keep every state's
  types and shardings. Outside a mesh context the step count, a scalar made as optax makes
  its own, is on one device at init and replicated over the mesh after an update."""
  mesh = jax.make_mesh(
    (MESH_DEVICES,),
    ('d',),
    axis_types=(jax.sharding.AxisType.Explicit,),
    devices=jax.devices()[:MESH_DEVICES],
  )
  put = lambda x, spec: jax.device_put(x, NamedSharding(mesh, spec))  # noqa: E731
  params = {
    'w': put(jnp.ones((8, 3)), P('d')),
    'h': put(jnp.ones(8, jnp.bfloat16), P('d')),
    'z': put(jnp.full((4, 2), 1 + 1j, jnp.complex64), P('d')),
    'b': put(jnp.ones(3), P()),
  }
  optimizers = _optimizers()
  for label, tx in optimizers.items():
    for path, leaf in jax.tree_util.tree_leaves_with_path(tx.init(params)):
      key = _parameter_key(path)
      want = params[key].sharding if key else leaf.sharding  # a count: any
      assert leaf.sharding.is_equivalent_to(want, leaf.ndim), (
        f'{label} init {jax.tree_util.keystr(path)}: {leaf.sharding}, parameter {want}'
      )
  traces = []

  @jax.jit
  def step(params, states):
    traces.append(None)
    return {k: tx.update(params, states[k], params)[1] for k, tx in optimizers.items()}

  with jax.set_mesh(mesh):
    init = {label: tx.init(params) for label, tx in optimizers.items()}
    first = step(params, init)
    second = step(params, first)
  assert len(traces) == 1, 'the updated states compiled the update again'
  for label in optimizers:
    for new in (first[label], second[label]):
      assert jax.tree.map(jax.typeof, new) == jax.tree.map(jax.typeof, init[label]), label
      _assert_equivalent(new, init[label], label)
  print(f'registry: {len(optimizers)} optimizers keep their sharding')


def _optax_sharding_tests() -> unittest.TestSuite:
  """optax's ``ShardingTest`` cases that take an optimizer, over ``padam_jax.OPTIMIZERS``.

  The module names its optimizers with ``parameterized.named_parameters(OPTIMIZERS.items())``
  when it is executed: the registry's items (learning rate 1, as optax's) take their place.
  optax 0.2.8 skips these tests on jax >= 0.10 by comparing version strings
  (``'0.10.2' < '0.7.2'``); padam-jax requires jax >= 0.10.2, so that comparison is dropped.
  """
  from absl.testing import parameterized

  path = os.path.join(os.path.dirname(optax.__file__), '_src', 'sharding_test.py')
  with open(path, encoding='utf-8') as f:
    source = re.sub(r"jax\.__version__ < '[\d.]+'", 'False', f.read())
  named_parameters = parameterized.named_parameters
  ours = [(name, factory(learning_rate=1.0)) for name, factory in padam_jax.OPTIMIZERS.items()]

  def over_registry(*testcases):
    if len(testcases) == 1 and isinstance(testcases[0], type({}.items())):
      testcases = ours
    return named_parameters(*testcases)

  module = types.ModuleType('padam_optax_sharding_test')
  with mock.patch.object(parameterized, 'named_parameters', over_registry):
    exec(compile(source, path, 'exec'), module.__dict__)
  suite = unittest.TestLoader().loadTestsFromTestCase(module.ShardingTest)
  return unittest.TestSuite(
    test
    for test in suite
    if isinstance(test, unittest.TestCase)
    and any(test.id().endswith(f'_{name}') for name in padam_jax.OPTIMIZERS)
  )


def _main() -> None:
  assert jax.device_count() == DEVICES, jax.devices()
  _check_registry()
  result = unittest.TextTestRunner(stream=sys.stdout, verbosity=1).run(_optax_sharding_tests())
  print(f'optax sharding tests: {result.testsRun} run, {len(result.skipped)} skipped')
  sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == '__main__':
  _main()
