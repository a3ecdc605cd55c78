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
"""Padam (partially adaptive momentum estimation)."""

import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
from optax._src import base
from optax._src import combine
from optax._src import numerics
from optax._src import transform
from optax._src import utils
import optax.tree


class ScaleByPadamState(NamedTuple):
  """State for the Padam algorithm.

  Attributes:
    count: number of updates applied so far (int32 scalar).
    mu: first moment, in ``mu_dtype`` or the parameters' dtype.
    nu: raw (not bias-corrected) second moment, in the parameters' dtype.
    nu_max: running elementwise maximum of ``nu``; ``None`` when amsgrad is off.
  """

  count: jax.Array  # shape=(), dtype=jnp.int32.
  mu: base.Updates
  nu: base.Updates
  nu_max: Optional[base.Updates]


def _one_minus_power(
    decay: jax.typing.ArrayLike, count: jax.Array
) -> jax.Array:
  """Returns ``1 - decay**count`` to round-off, also for ``decay`` near 1.

  In float32, ``1 - 0.999**count`` loses about 1e-5 of relative accuracy to
  cancellation, and the partial power passes that error on to the update. As
  ``-expm1(count * log(decay))``, with the logarithm of a Python number taken in
  double precision as the reference implementation does, it stays at round-off.

  Args:
    decay: A decay rate in [0, 1).
    count: The step count, as a float array.

  Returns:
    ``1 - decay**count`` in the dtype of ``count``.
  """
  if isinstance(decay, (int, float)):
    log_decay = math.log(decay) if decay > 0 else -math.inf
  else:
    log_decay = jnp.log(jnp.asarray(decay, count.dtype))
  return -jnp.expm1(count * log_decay)


def scale_by_padam(
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    partial: jax.typing.ArrayLike = 0.125,
    eps: jax.typing.ArrayLike = 1e-8,
    mu_dtype: Optional[jax.typing.DTypeLike] = None,
    *,
    amsgrad: bool = True,
) -> base.GradientTransformation:
  r"""Rescale updates according to the Padam algorithm.

  See :func:`optax.contrib.padam` for more details.

  Args:
    b1: Decay rate for the exponentially weighted average of grads.
    b2: Decay rate for the exponentially weighted average of squared grads.
    partial: The partial adaptive parameter :math:`p` in :math:`[0, 1/2]`: the
      denominator is the square root of the second moment to the power
      :math:`2p`.
    eps: Term added to the square root of the second moment, inside the power.
    mu_dtype: Optional `dtype` to be used for the first order accumulator; if
      `None` then the `dtype` is inferred from `params` and `updates`.
    amsgrad: Whether to divide by the running maximum of the second moment, as
      AMSGrad does, rather than by the second moment itself.

  Returns:
    A :class:`optax.GradientTransformation` object.

  .. seealso:: :func:`optax.contrib.padam`
  """

  mu_dtype = utils.canonicalize_dtype(mu_dtype)

  def init_fn(params):
    mu = optax.tree.zeros_like(params, dtype=mu_dtype)  # First moment
    nu = optax.tree.zeros_like(params)  # Second moment
    nu_max = optax.tree.zeros_like(params) if amsgrad else None
    return ScaleByPadamState(
        count=jnp.zeros([], jnp.int32), mu=mu, nu=nu, nu_max=nu_max
    )

  def update_fn(updates, state, params=None):
    del params
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count_inc = numerics.safe_increment(state.count)
    if amsgrad:
      nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
      nu_hat = nu_max
    else:
      nu_max = None
      nu_hat = nu
    t = count_inc.astype(jnp.result_type(float))
    scale = jnp.sqrt(_one_minus_power(b2, t)) / _one_minus_power(b1, t)

    def direction(m, v):
      inverse_denominator = (jnp.sqrt(v) + eps) ** (-2 * partial)
      return scale.astype(m.dtype) * (m * inverse_denominator)

    updates = jax.tree.map(
        lambda m, v: None if m is None else direction(m, v),
        mu,
        nu_hat,
        is_leaf=lambda x: x is None,
    )
    mu = optax.tree.cast(mu, mu_dtype)
    nu = optax.tree.cast_like(nu, state.nu)
    if amsgrad:
      nu_max = optax.tree.cast_like(nu_max, state.nu_max)
    return updates, ScaleByPadamState(
        count=count_inc, mu=mu, nu=nu, nu_max=nu_max
    )

  # The state's nu_max may be None, which `base.OptState` does not include.
  # pyrefly: ignore[bad-argument-type]
  return base.GradientTransformation(init_fn, update_fn)


def padam(
    learning_rate: base.ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    partial: jax.typing.ArrayLike = 0.125,
    eps: jax.typing.ArrayLike = 1e-8,
    mu_dtype: Optional[jax.typing.DTypeLike] = None,
    *,
    amsgrad: bool = True,
) -> base.GradientTransformationExtraArgs:
  r"""The Padam optimizer (partially adaptive momentum estimation).

  Padam divides the first moment of the gradients by a partial power of the
  second moment. With :math:`p = 1/2` and ``eps=0`` it is AMSGrad as PyTorch
  implements it (the maximum is taken over the raw second moment); with
  :math:`p = 0` it is SGD with momentum, the step being the momentum
  :math:`m_t` times the bias correction
  :math:`\sqrt{1-\beta_2^t} / (1-\beta_1^t)`. The paper reports that values
  in between, such as the default :math:`p = 1/8`, train as fast as adaptive
  methods early on and generalize like SGD with momentum, which adaptive
  methods with :math:`p = 1/2` often do not.

  Let :math:`\alpha_t` represent the learning rate and :math:`\beta_1, \beta_2`,
  :math:`\varepsilon`, :math:`p` represent the arguments ``b1``, ``b2``,
  ``eps`` and ``partial`` respectively. The ``init`` function of this optimizer
  initializes an internal state :math:`S_0 := (m_0, v_0, \hat{v}_0) = (0, 0, 0)`
  of pytrees of zeros shaped as the parameters. At step :math:`t \geq 1`, the
  ``update`` function takes the incoming gradients :math:`g_t` and the state
  :math:`S_{t-1}` and computes

  .. math::

    \begin{align*}
      m_t &\leftarrow \beta_1 \cdot m_{t-1} + (1-\beta_1) \cdot g_t \\
      v_t &\leftarrow \beta_2 \cdot v_{t-1} + (1-\beta_2) \cdot {g_t}^2 \\
      \hat{v}_t &\leftarrow \max(\hat{v}_{t-1}, v_t) \\
      u_t &\leftarrow -\alpha_t \cdot \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
        \cdot m_t / \left(\sqrt{\hat{v}_t} + \varepsilon\right)^{2p} \\
      S_t &\leftarrow (m_t, v_t, \hat{v}_t).
    \end{align*}

  With ``amsgrad=False``, :math:`\hat{v}_t = v_t` and no maximum is kept. The
  maximum is taken over the raw second moment and the bias correction is that
  of the authors' implementation, whose updates these equal.

  Args:
    learning_rate: A global scaling factor, either fixed or evolving along
      iterations with a scheduler, see :func:`optax.scale_by_learning_rate`.
    b1: Exponential decay rate to track the first moment of past gradients.
    b2: Exponential decay rate to track the second moment of past gradients.
    partial: The partial adaptive parameter :math:`p` in :math:`[0, 1/2]`.
    eps: A small constant added to the square root of the second moment,
      inside the power, to avoid dividing by zero.
    mu_dtype: Optional `dtype` to be used for the first order accumulator; if
      `None` then the `dtype` is inferred from `params` and `updates`.
    amsgrad: Whether to divide by the running maximum of the second moment
      (the authors' default) rather than by the second moment itself.

  Returns:
    The corresponding :class:`optax.GradientTransformationExtraArgs`.

  Examples:
    >>> import optax
    >>> import jax
    >>> import jax.numpy as jnp
    >>> def f(x): return jnp.sum(x ** 2)  # simple quadratic function
    >>> solver = optax.contrib.padam(learning_rate=0.1)
    >>> params = jnp.array([1., 2., 3.])
    >>> print('Objective function: ', f(params))
    Objective function:  14.0
    >>> opt_state = solver.init(params)
    >>> for _ in range(5):
    ...  grad = jax.grad(f)(params)
    ...  updates, opt_state = solver.update(grad, opt_state, params)
    ...  params = optax.apply_updates(params, updates)
    ...  print('Objective function: {:.2E}'.format(f(params)))
    Objective function: 1.37E+01
    Objective function: 1.34E+01
    Objective function: 1.30E+01
    Objective function: 1.25E+01
    Objective function: 1.20E+01

  References:
    Chen et al, `Closing the Generalization Gap of Adaptive Gradient Methods in
    Training Deep Neural Networks <https://arxiv.org/abs/1806.06763>`_, 2018

    Chen et al, Closing the Generalization Gap of Adaptive Gradient Methods in
    Training Deep Neural Networks, IJCAI 2020, pages 3267-3275

  .. seealso:: :func:`optax.amsgrad`, :func:`optax.adam`.
  """
  return combine.chain(
      scale_by_padam(
          b1=b1,
          b2=b2,
          partial=partial,
          eps=eps,
          mu_dtype=mu_dtype,
          amsgrad=amsgrad,
      ),
      transform.scale_by_learning_rate(learning_rate),
  )
