# Copyright 2026 The padam-jax developers. All Rights Reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
# ==============================================================================
"""Specific tests for `_padam.py`, see `_common_test.py` for usual tests."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
from optax._src import test_utils
from optax.contrib import _padam

_LEARNING_RATE = 0.1
# A large gradient followed by small ones makes the raw second moment fall, so
# that its running maximum differs from it, also with b2 = 0.999.
_GRADIENT_SCALES = (1.0, 10.0, 0.01, 0.1, 0.01, 1.0, 0.01, 0.01)
_BETAS = (
    {'b1': 0.9, 'b2': 0.999},
    {'b1': 0.5, 'b2': 0.9},
)


def _gradients(zero_coordinate=False):
  """Float64 gradients of two leaves, with a leading axis of steps."""
  rng = np.random.default_rng(0)
  scales = np.asarray(_GRADIENT_SCALES)
  grads = {
      'w': scales[:, None, None] * rng.normal(size=(len(scales), 3, 4)),
      'b': scales[:, None] * rng.normal(size=(len(scales), 5)),
  }
  if zero_coordinate:
    grads['b'][:, 0] = 0.0
  return grads


def _padam_updates(grads, **kwargs):
  """The updates of `padam` for each step of `grads` (a leading axis)."""
  opt = _padam.padam(learning_rate=_LEARNING_RATE, **kwargs)
  update_fn = jax.jit(opt.update)
  state = opt.init(jax.tree.map(lambda g: jnp.zeros_like(g[0]), grads))
  updates = []
  for t in range(len(_GRADIENT_SCALES)):
    updates_t, state = update_fn({k: g[t] for k, g in grads.items()}, state)
    updates.append(updates_t)
  return jax.tree.map(lambda *u: np.stack(u), *updates)


def _torch_amsgrad_updates(g, b1, b2, amsgrad):
  """`torch.optim.Adam(amsgrad=amsgrad, eps=0)`'s updates, in numpy.

  The maximum is taken over the raw second moment, and the step is
  ``lr / (1 - b1**t) * m / (sqrt(v_max) / sqrt(1 - b2**t) + eps)``.

  Args:
    g: The gradients of one leaf, with a leading axis of steps.
    b1: Decay rate of the first moment.
    b2: Decay rate of the second moment.
    amsgrad: Whether to divide by the running maximum of the second moment.

  Returns:
    The updates (the negative of PyTorch's steps) and whether the maximum ever
    differed from the second moment.
  """
  m, v, v_max = np.zeros_like(g[0]), np.zeros_like(g[0]), np.zeros_like(g[0])
  updates, max_active = [], False
  for t, g_t in enumerate(g, start=1):
    m = b1 * m + (1 - b1) * g_t
    v = b2 * v + (1 - b2) * g_t * g_t
    v_max = np.maximum(v_max, v)
    max_active |= bool(np.any(v_max > v))
    denominator = np.sqrt(v_max if amsgrad else v) / np.sqrt(1 - b2**t)
    updates.append(-_LEARNING_RATE / (1 - b1**t) * m / denominator)
  return np.stack(updates), max_active


def _momentum_updates(g, b1, b2):
  """The updates of Padam at p = 0, in numpy: SGD with momentum.

  ``(sqrt(v) + eps) ** 0 = 1``, whatever ``eps`` and ``v``, so the step is the
  momentum times Padam's bias correction,
  ``lr * sqrt(1 - b2**t) / (1 - b1**t) * m``.

  Args:
    g: The gradients of one leaf, with a leading axis of steps.
    b1: Decay rate of the first moment.
    b2: Decay rate of the second moment (it enters the bias correction only).

  Returns:
    The updates.
  """
  m = np.zeros_like(g[0])
  updates = []
  for t, g_t in enumerate(g, start=1):
    m = b1 * m + (1 - b1) * g_t
    scale = np.sqrt(1 - b2**t) / (1 - b1**t)
    updates.append(-_LEARNING_RATE * scale * m)
  return np.stack(updates)


class PadamTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    jax.config.update('jax_enable_x64', True)

  def tearDown(self):
    super().tearDown()
    jax.config.update('jax_enable_x64', False)

  @parameterized.product(_BETAS, amsgrad=(True, False))
  def test_partial_one_half_is_torch_amsgrad(self, b1, b2, amsgrad):
    grads = _gradients()
    updates = _padam_updates(
        grads, b1=b1, b2=b2, partial=0.5, eps=0.0, amsgrad=amsgrad
    )
    for name, g in grads.items():
      with self.subTest(name):
        expected, max_active = _torch_amsgrad_updates(g, b1, b2, amsgrad)
        self.assertTrue(max_active)
        self.assertEqual(updates[name].dtype, np.float64)
        test_utils.assert_trees_all_close(
            updates[name], expected, rtol=1e-12, atol=0.0
        )

  @parameterized.product(_BETAS, eps=(1e-8, 0.0), amsgrad=(True, False))
  def test_partial_zero_is_sgd_with_momentum(self, b1, b2, eps, amsgrad):
    grads = _gradients(zero_coordinate=True)
    updates = _padam_updates(
        grads, b1=b1, b2=b2, partial=0.0, eps=eps, amsgrad=amsgrad
    )
    for name, g in grads.items():
      with self.subTest(name):
        self.assertEqual(updates[name].dtype, np.float64)
        # With atol=0, the zero coordinate's updates must be exactly 0.
        test_utils.assert_trees_all_close(
            updates[name], _momentum_updates(g, b1, b2), rtol=1e-12, atol=0.0
        )

  @parameterized.parameters(True, False)
  def test_second_moments_keep_their_dtype(self, amsgrad):
    opt = _padam.padam(learning_rate=_LEARNING_RATE, amsgrad=amsgrad)
    params = {'w': jnp.ones((2, 3), jnp.bfloat16)}
    state = opt.init(params)
    grads = {'w': jnp.ones((2, 3), jnp.float32)}
    _, new_state = opt.update(grads, state, params)
    test_utils.assert_trees_all_equal_dtypes(
        (new_state[0].nu, new_state[0].nu_max), (state[0].nu, state[0].nu_max)
    )


if __name__ == '__main__':
  absltest.main()
