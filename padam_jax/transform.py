"""The Padam gradient transformation and its torch-convention AMSGrad sibling.

Both keep Adam's moments (``mu``, ``nu``) and, with ``amsgrad=True``, the running
maximum of the raw (not bias-corrected) second moment (``nu_max``), exactly as the
authors' PyTorch ``Padam`` and ``torch.optim.Adam(amsgrad=True)`` do. A complex
parameter is treated as two real ones (its real and imaginary parts), as PyTorch's
optimizers do through ``torch.view_as_real``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

ScalarOrSchedule: TypeAlias = optax.ScalarOrSchedule  # the very alias optax annotates its own with

# Exponents 2**-k up to this k are computed with square roots: XLA's CPU `pow`
# costs several times a whole AMSGrad update, a chain of sqrt costs almost nothing.
_MAX_SQRT_CHAIN = 6


class ScaleByPadamState(NamedTuple):
  """State of :func:`scale_by_padam` (and :func:`scale_by_amsgrad_torch`).

  Attributes:
    count: number of updates applied so far (int32 scalar).
    mu: first moment, in ``mu_dtype`` or the parameters' dtype (complex for a
      complex parameter).
    nu: raw second moment, real, in at least float32; for a complex parameter of
      shape ``s`` it has shape ``s + (2,)``: the real and imaginary parts' own
      moments, as ``torch.view_as_real`` lays them out.
    nu_max: running elementwise maximum of ``nu``; ``None`` when amsgrad is off.
  """

  count: chex.Array
  mu: optax.Updates
  nu: optax.Updates
  nu_max: optax.Updates | None


def _is_traced(value: Any) -> bool:
  return isinstance(value, jax.core.Tracer)


def real_hyperparameter(value: Any) -> Any:
  """The real part of a complex hyperparameter array; anything else unchanged.

  ``optax.inject_hyperparams`` casts hyperparameters to the parameters' widest
  dtype, complex when a parameter is complex; their zero imaginary part must not
  turn real moments or real leaves complex.
  """
  if isinstance(value, (jax.Array, np.ndarray)) and jnp.iscomplexobj(value):
    return jnp.real(value)
  return value


class HyperparameterError(ValueError):
  """A hyperparameter out of its range: ``name`` is the argument, ``problem`` the rest."""

  def __init__(self, name: str, problem: str):
    super().__init__(f'{name} {problem}')
    self.name = name
    self.problem = problem


def check_hyperparameter(
  name: str, value: Any, low: float, high: float, *, high_inclusive: bool
) -> None:
  """Raises ``HyperparameterError`` naming ``name`` if a concrete ``value`` is out of range.

  Schedules (callables) and traced values are not checked.
  """
  if value is None or callable(value) or _is_traced(value):
    return
  array = np.asarray(value, dtype=np.float64)
  above = array > high if high_inclusive else array >= high
  if np.any(np.isnan(array)) or np.any(array < low) or np.any(above):
    bracket = ']' if high_inclusive else ')'
    raise HyperparameterError(name, f'must lie in [{low}, {high}{bracket}, got {value!r}.')


def check_non_negative(name: str, value: Any) -> None:
  """Raises ``HyperparameterError`` naming ``name`` if a concrete ``value`` is negative."""
  check_hyperparameter(name, value, 0.0, np.inf, high_inclusive=True)


def _check_moment_hyperparameters(
  b1: float | jax.Array, b2: float | jax.Array, eps: float | jax.Array
) -> None:
  check_hyperparameter('b1', b1, 0.0, 1.0, high_inclusive=False)
  check_hyperparameter('b2', b2, 0.0, 1.0, high_inclusive=False)
  check_non_negative('eps', eps)


def _concrete_scalar(value: Any) -> float | None:
  """``float(value)`` for a concrete scalar, ``None`` for traced or callable."""
  if callable(value) or _is_traced(value) or np.ndim(value) != 0:
    return None
  return float(value)


def fractional_power(x: jax.Array, exponent: Any) -> jax.Array:
  """``x ** exponent`` for ``x > 0``, fast on every backend.

  A concrete exponent 0, +-2**-k (k <= 6) or -1 uses ones, a chain of square
  roots ending in ``rsqrt`` for negative exponents, or a reciprocal; any other
  exponent, traced ones included, uses ``exp(exponent * log(x))`` in at least
  float32. XLA's ``pow`` is slow on CPU (measured: docs/measurements.md#fractional-power).

  Args:
    x: Positive array.
    exponent: A number or a scalar array (traced or not).

  Returns:
    ``x ** exponent`` in ``x``'s dtype.
  """
  value = _concrete_scalar(exponent)
  if value == 0.0:
    return jnp.ones_like(x)
  if value == -1.0:
    return 1 / x
  depth = (
    None
    if value is None
    else next((k for k in range(_MAX_SQRT_CHAIN + 1) if abs(value) == 2.0**-k), None)
  )
  if value is None or depth is None or depth == 0:
    if value == 1.0:
      return x
    wide = _second_moment_dtype(x.dtype)
    y = jnp.exp(jnp.asarray(exponent, wide) * jnp.log(x.astype(wide)))
    return y.astype(x.dtype)
  for _ in range(depth - 1):
    x = jnp.sqrt(x)
  return jax.lax.rsqrt(x) if value < 0 else jnp.sqrt(x)


def _float_dtype() -> jnp.dtype:
  """The default float dtype: float64 under ``jax_enable_x64``, else float32."""
  return jnp.result_type(float)


def _one_minus_power(b: float | jax.Array, t: jax.Array) -> jax.Array:
  """``1 - b**t`` without float32 cancellation (``-expm1(t * log b)``).

  ``log b`` is taken in Python double precision when ``b`` is concrete, so the
  bias corrections stay accurate to float32 round-off even for ``b2 = 0.999``.
  """
  log_b: jax.Array | float
  if _is_traced(b) or np.ndim(b) != 0:
    log_b = jnp.log(jnp.asarray(b, t.dtype))
  else:
    log_b = math.log(float(b)) if float(b) > 0 else -math.inf
  return -jnp.expm1(t * log_b)


def _second_moment_dtype(dtype: jnp.dtype) -> jnp.dtype:
  """Real dtype of the second moments: the parts' dtype, at least float32.

  bf16/fp16 cannot represent b2 = 0.999 (it rounds to 1), hence the float32 floor.
  """
  return jnp.promote_types(jnp.finfo(dtype).dtype, jnp.float32)


def _first_moment_dtype(dtype: jnp.dtype, mu_dtype: jnp.dtype | None) -> jnp.dtype:
  """``mu_dtype`` (or ``dtype``); a complex leaf keeps a complex first moment."""
  if mu_dtype is None:
    return jnp.dtype(dtype)
  if jnp.issubdtype(dtype, jnp.complexfloating):
    return jnp.promote_types(mu_dtype, jnp.complex64)  # JAX's smallest complex type
  return mu_dtype


def _view_as_real(x: jax.Array) -> jax.Array:
  """Complex ``x`` of shape ``s`` -> real ``s + (2,)`` (``torch.view_as_real``)."""
  return jnp.stack([jnp.real(x), jnp.imag(x)], axis=-1)


def _view_as_complex(x: jax.Array) -> jax.Array:
  """Inverse of :func:`_view_as_real` (float32 -> complex64, float64 -> complex128)."""
  return jax.lax.complex(x[..., 0], x[..., 1])


def _init_moments(
  params: optax.Params, mu_dtype: jnp.dtype | None, amsgrad: bool
) -> ScaleByPadamState:
  """Zero moments shaped, typed and sharded after ``params`` (``zeros_like`` keeps sharding)."""

  def second(p: jax.Array) -> jax.Array:
    dtype = _second_moment_dtype(p.dtype)
    if jnp.iscomplexobj(p):
      return _view_as_real(jnp.zeros_like(p)).astype(dtype)
    return jnp.zeros_like(p, dtype)

  mu = jax.tree.map(lambda p: jnp.zeros_like(p, _first_moment_dtype(p.dtype, mu_dtype)), params)
  nu = jax.tree.map(second, params)
  nu_max = jax.tree.map(second, params) if amsgrad else None
  return ScaleByPadamState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu, nu_max=nu_max)


def _moment_step(
  updates: optax.Updates,
  state: ScaleByPadamState,
  b1: float | jax.Array,
  b2: float | jax.Array,
  amsgrad: bool,
  direction: Callable[[jax.Array, jax.Array], jax.Array],
  mu_dtype: jnp.dtype | None,
) -> tuple[optax.Updates, ScaleByPadamState]:
  """Advances the moments and maps ``direction(mu, second)`` over the leaves.

  ``second`` is ``nu_max`` with amsgrad and ``nu`` without; the direction is cast
  back to each update's dtype. A complex leaf runs through the same real
  arithmetic on its ``_view_as_real`` pair. ``None`` leaves pass through untouched.
  """

  def leaf(
    g: jax.Array,
    m: jax.Array,
    v: jax.Array,
    v_max: Any,  # an array with amsgrad, else None
  ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array | None]:
    compute = _second_moment_dtype(g.dtype)
    as_real, as_input = (
      (_view_as_real, _view_as_complex) if jnp.iscomplexobj(g) else (lambda x: x, lambda x: x)
    )
    g_real = as_real(g).astype(compute)
    m = b1 * as_real(m).astype(compute) + (1 - b1) * g_real
    v = b2 * v + (1 - b2) * g_real * g_real
    v_max = jnp.maximum(v_max, v) if amsgrad else None
    d = as_input(direction(m, v_max if amsgrad else v)).astype(g.dtype)
    return d, as_input(m).astype(_first_moment_dtype(g.dtype, mu_dtype)), v, v_max

  flat_g, treedef = jax.tree.flatten(updates)
  flat_nu_max = treedef.flatten_up_to(state.nu_max) if amsgrad else [None] * len(flat_g)
  flat = [
    leaf(*leaves)
    for leaves in zip(
      flat_g,
      treedef.flatten_up_to(state.mu),
      treedef.flatten_up_to(state.nu),
      flat_nu_max,
      strict=True,
    )
  ]
  unflatten = lambda i: treedef.unflatten([f[i] for f in flat])  # noqa: E731
  count = optax.safe_increment(state.count)
  new_state = ScaleByPadamState(
    count=count, mu=unflatten(1), nu=unflatten(2), nu_max=unflatten(3) if amsgrad else None
  )
  return unflatten(0), new_state


def scale_by_padam(
  b1: float = 0.9,
  b2: float = 0.999,
  partial: ScalarOrSchedule = 0.125,
  eps: float = 1e-8,
  amsgrad: bool = True,
  *,
  exact_bias_correction: bool = False,
  mu_dtype: Any | None = None,
) -> optax.GradientTransformation:
  r"""Rescales updates by partially adaptive momentum (Padam).

  Padam keeps the moment estimates of Adam and AMSGrad but divides the first moment by a
  partial power ``p`` of the second moment's square root only: ``p = 1/2`` is AMSGrad and
  ``p -> 0`` heavy-ball momentum with bias correction. In between, the paper finds, it trains
  fast as adaptive methods do and generalises as SGD with momentum does.

  Let :math:`\beta_1, \beta_2, \varepsilon, p` be ``b1``, ``b2``, ``eps`` and ``partial``,
  and :math:`g_t` the incoming update at step :math:`t \geq 1`. The state starts at
  :math:`m_0 = v_0 = \hat{v}_0 = 0` and, per element,

  .. math::

    \begin{align*}
      m_t &\leftarrow \beta_1 \, m_{t-1} + (1 - \beta_1) \, g_t \\
      v_t &\leftarrow \beta_2 \, v_{t-1} + (1 - \beta_2) \, g_t^2 \\
      \hat{v}_t &\leftarrow \max(\hat{v}_{t-1}, v_t) \\
      c_t &\leftarrow \sqrt{1 - \beta_2^t} \, / \, (1 - \beta_1^t) \\
      u_t &\leftarrow c_t \, m_t \, / \, \bigl(\sqrt{\hat{v}_t} + \varepsilon\bigr)^{2p}
    \end{align*}

  With ``amsgrad=False``, :math:`\hat{v}_t = v_t`. The maximum is over the raw
  :math:`v_t` and :math:`c_t` is the authors' bias correction, so that with the defaults the
  update equals their PyTorch ``Padam``'s; ``exact_bias_correction=True`` takes
  :math:`c_t = (1 - \beta_2^t)^p / (1 - \beta_1^t)` instead. A complex leaf is updated as the
  pair of its real and imaginary parts (``torch.view_as_real``), each with its own
  :math:`v_t`. Chain it with a negative learning rate, or use :func:`padam_jax.padam`.

  Args:
    b1: Decay rate of the first moment, in [0, 1).
    b2: Decay rate of the second moment, in [0, 1).
    partial: The partial power p in [0, 1/2], a number or a schedule of the step count
      (for example one that moves from adaptive to SGD-like).
    eps: Added to the square root inside the power, so that the denominator never falls
      below ``eps ** (2 * partial)``.
    amsgrad: Whether to divide by the running maximum of the second moment (the authors'
      default) rather than by the second moment itself.
    exact_bias_correction: Whether to correct by ``(1 - b2**t) ** partial`` instead of the
      authors' ``sqrt(1 - b2**t)``, which acts as a warm-up when ``partial < 1/2``.
    mu_dtype: Optional dtype of the first moment (for example ``jnp.bfloat16``); if ``None``,
      each parameter's own dtype. The second moments are at least float32.

  Returns:
    The corresponding :class:`optax.GradientTransformation`, with state
    :class:`ScaleByPadamState` sharded as the parameters.

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import padam_jax
    >>> tx = optax.chain(padam_jax.scale_by_padam(partial=0.125), optax.scale(-1.0))
    >>> grads = jnp.array([0.01, 1.0, 100.0])
    >>> updates, state = tx.update(grads, tx.init(grads))
    >>> print(*(f'{u:.4f}' for u in updates))  # a first step grows as |g| ** (1 - 2p)
    -0.0024 -0.0750 -2.3714

  References:
    Chen and Gu, `Closing the Generalization Gap of Adaptive Gradient Methods in Training
    Deep Neural Networks <https://arxiv.org/abs/1806.06763>`_, 2018

    Chen, Zhou, Tang, Yang, Cao and Gu, Closing the Generalization Gap of Adaptive Gradient
    Methods in Training Deep Neural Networks, Proceedings of the 29th International Joint
    Conference on Artificial Intelligence (IJCAI), pages 3267-3275, 2020

  .. seealso:: :func:`padam_jax.padam`, :func:`padam_jax.padamw`.
  """
  b1, b2, eps, partial = map(real_hyperparameter, (b1, b2, eps, partial))
  _check_moment_hyperparameters(b1, b2, eps)
  check_hyperparameter('partial', partial, 0.0, 0.5, high_inclusive=True)
  mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

  def init_fn(params: optax.Params) -> ScaleByPadamState:
    return _init_moments(params, mu_dtype, amsgrad)

  def update_fn(
    updates: optax.Updates, state: ScaleByPadamState, params: optax.Params | None = None
  ) -> tuple[optax.Updates, ScaleByPadamState]:
    del params
    p = partial(state.count) if callable(partial) else partial
    t = optax.safe_increment(state.count).astype(_float_dtype())
    bias1 = _one_minus_power(b1, t)
    bias2 = _one_minus_power(b2, t)
    if exact_bias_correction:
      scale = fractional_power(bias2, p) / bias1
    else:
      scale = jnp.sqrt(bias2) / bias1
    exponent = -2 * p

    def direction(m: jax.Array, second: jax.Array) -> jax.Array:
      # m * d**(-2p) rather than m / d**(2p): a multiply is cheaper than a divide.
      inverse_denom = fractional_power(jnp.sqrt(second) + eps, exponent)
      return scale.astype(m.dtype) * (m * inverse_denom)

    return _moment_step(updates, state, b1, b2, amsgrad, direction, mu_dtype)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_amsgrad_torch(
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  amsgrad: bool = True,
  *,
  mu_dtype: Any | None = None,
) -> optax.GradientTransformation:
  """Rescales updates as ``torch.optim.Adam`` does (``amsgrad`` selects AMSGrad).

  ``out = (mu / (1 - b1**t)) / (sqrt(nu_max / (1 - b2**t)) + eps)`` with the
  maximum over the *raw* ``nu``, as PyTorch keeps it. ``optax.scale_by_amsgrad``
  instead takes the maximum of the bias-corrected ``nu``, which differs
  (docs/recipes.md#amsgrad-in-optax-and-in-pytorch).

  Args:
    b1: Decay rate of the first moment, in [0, 1).
    b2: Decay rate of the second moment, in [0, 1).
    eps: Added to the bias-corrected square root of the second moment.
    amsgrad: Whether to divide by the running maximum of the raw second moment
      (``torch.optim.Adam(amsgrad=True)``) rather than by the second moment (Adam).
    mu_dtype: Optional dtype of the first moment; if ``None``, each parameter's own.

  Returns:
    The corresponding :class:`optax.GradientTransformation`, with state
    :class:`ScaleByPadamState`.
  """
  b1, b2, eps = map(real_hyperparameter, (b1, b2, eps))
  _check_moment_hyperparameters(b1, b2, eps)
  mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

  def init_fn(params: optax.Params) -> ScaleByPadamState:
    return _init_moments(params, mu_dtype, amsgrad)

  def update_fn(
    updates: optax.Updates, state: ScaleByPadamState, params: optax.Params | None = None
  ) -> tuple[optax.Updates, ScaleByPadamState]:
    del params
    t = optax.safe_increment(state.count).astype(_float_dtype())
    bias1 = _one_minus_power(b1, t)
    sqrt_bias2 = jnp.sqrt(_one_minus_power(b2, t))

    def direction(m: jax.Array, second: jax.Array) -> jax.Array:
      denom = jnp.sqrt(second) / sqrt_bias2.astype(m.dtype) + eps
      return (m / bias1.astype(m.dtype)) / denom

    return _moment_step(updates, state, b1, b2, amsgrad, direction, mu_dtype)

  return optax.GradientTransformation(init_fn, update_fn)
