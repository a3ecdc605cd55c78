"""Ready-made optimizers (Padam and the paper's baselines) with PyTorch conventions.

Every optimizer here is an ``optax.chain`` of small pieces and matches its PyTorch
counterpart (the authors' ``Padam``, ``torch.optim.SGD``/``Adam``/``AdamW``) to
round-off in float64. ``REGISTRY`` holds each by name, with its default learning rate and
the name of its PyTorch twin; ``OPTIMIZERS`` maps the names to the factories.

Annotations are evaluated (no ``from __future__ import annotations``): optax's
shared optimizer tests read ``learning_rate: ScalarOrSchedule`` from the signature
to decide whether an optimizer takes a schedule.
"""

import dataclasses
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import optax

from padam_jax.transform import (
  ScalarOrSchedule,
  check_hyperparameter,
  check_non_negative,
  real_hyperparameter,
  scale_by_amsgrad_torch,
  scale_by_padam,
)

MaskOrFn = Any | None


def _weight_decay(weight_decay: float | jax.Array, mask: MaskOrFn) -> optax.GradientTransformation:
  """Adds ``weight_decay * params`` to the updates on the leaves ``mask`` selects.

  Placed before the moments it is PyTorch's coupled L2 (``weight_decay=``), after
  them it is AdamW's decoupled decay.
  """
  weight_decay = real_hyperparameter(weight_decay)
  check_non_negative('weight_decay', weight_decay)
  if isinstance(weight_decay, (int, float)) and weight_decay == 0:
    return optax.identity()  # so that update() needs no params without decay
  return optax.add_decayed_weights(weight_decay, mask)


def _keep_dtypes(
  tx: optax.GradientTransformationExtraArgs,
) -> optax.GradientTransformationExtraArgs:
  """``tx`` with its updates in the incoming dtypes and its state in the previous ones.

  A no-op with Python-number hyperparameters. ``optax.inject_hyperparams`` makes them
  arrays of the parameters' widest dtype, which would promote narrower leaves (bfloat16
  beside float32) and change the state's dtypes from one step to the next.
  """

  def update_fn(
    updates: optax.Updates,
    state: optax.OptState,
    params: optax.Params | None = None,
    **extra_args: Any,
  ) -> tuple[optax.Updates, optax.OptState]:
    new_updates, new_state = tx.update(updates, state, params, **extra_args)
    like = lambda new, old: new.astype(old.dtype)  # noqa: E731
    return jax.tree.map(like, new_updates, updates), jax.tree.map(like, new_state, state)

  return optax.GradientTransformationExtraArgs(tx.init, update_fn)


def _assemble(
  scaling: optax.GradientTransformation,
  learning_rate: ScalarOrSchedule,
  weight_decay: float | jax.Array,
  mask: MaskOrFn,
  *,
  decoupled: bool,
) -> optax.GradientTransformation:
  """``decay -> scaling -> -lr`` (coupled L2) or ``scaling -> decay -> -lr`` (decoupled)."""
  learning_rate = real_hyperparameter(learning_rate)
  check_non_negative('learning_rate', learning_rate)
  decay = _weight_decay(weight_decay, mask)
  steps = (scaling, decay) if decoupled else (decay, scaling)
  return _keep_dtypes(optax.chain(*steps, optax.scale_by_learning_rate(learning_rate)))


def padam(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  partial: ScalarOrSchedule = 0.125,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  *,
  amsgrad: bool = True,
  exact_bias_correction: bool = False,
  mu_dtype: Any | None = None,
  mask: MaskOrFn = None,
) -> optax.GradientTransformation:
  r"""The Padam optimizer (partially adaptive momentum), as the authors' PyTorch code.

  Padam is AMSGrad with the second moment's square root raised to a partial power ``p``:
  adaptive enough to train fast, close enough to SGD with momentum to generalise as it does.
  This is ``chain(coupled L2, scale_by_padam, -learning_rate)``: the weight decay joins the
  gradient before the moments, as in the authors' code and ``torch.optim.Adam``.

  Let :math:`\alpha_t` be the learning rate, :math:`\lambda` the weight decay and
  :math:`\beta_1, \beta_2, \varepsilon, p` the arguments ``b1``, ``b2``, ``eps`` and
  ``partial``. From :math:`m_0 = v_0 = \hat{v}_0 = 0`, step :math:`t \geq 1` with gradient
  :math:`g_t` and parameters :math:`\theta_{t-1}` computes

  .. math::

    \begin{align*}
      d_t &\leftarrow g_t + \lambda \, \theta_{t-1} \\
      m_t &\leftarrow \beta_1 \, m_{t-1} + (1 - \beta_1) \, d_t \\
      v_t &\leftarrow \beta_2 \, v_{t-1} + (1 - \beta_2) \, d_t^2 \\
      \hat{v}_t &\leftarrow \max(\hat{v}_{t-1}, v_t) \\
      u_t &\leftarrow -\alpha_t \, \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t} \,
        \frac{m_t}{\bigl(\sqrt{\hat{v}_t} + \varepsilon\bigr)^{2p}}
    \end{align*}

  and :math:`\theta_t = \theta_{t-1} + u_t` (:func:`optax.apply_updates`). ``p = 1/2`` gives
  AMSGrad and ``p = 0`` SGD with (bias-corrected) momentum; the paper uses ``p = 1/8``.

  Args:
    learning_rate: A fixed step size or a schedule of the step count.
    b1: Decay rate of the first moment, in [0, 1).
    b2: Decay rate of the second moment, in [0, 1).
    partial: The partial power p in [0, 1/2], a number or a schedule.
    eps: Added to the square root inside the power.
    weight_decay: L2 coefficient added to the gradient (``lambda * theta``), as PyTorch's
      ``weight_decay=``; :func:`padamw` decouples it instead.
    amsgrad: Whether to divide by the running maximum of the second moment.
    exact_bias_correction: See :func:`padam_jax.scale_by_padam`.
    mu_dtype: Optional dtype of the first moment; if ``None``, each parameter's own.
    mask: Which leaves the weight decay applies to: a pytree of booleans, or a function of
      the parameters that returns one (as :func:`optax.add_decayed_weights`); all if ``None``.

  Returns:
    The corresponding :class:`optax.GradientTransformation`. Every numeric
    hyperparameter works under :func:`optax.inject_hyperparams`.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import padam_jax
    >>> def loss(x):
    ...   return jnp.sum((x - 1.0) ** 2)
    >>> solver = padam_jax.padam(learning_rate=0.1, partial=0.125)
    >>> params = jnp.array([-2.0, 0.0, 4.0])
    >>> state = solver.init(params)
    >>> for step in range(1, 6):
    ...   updates, state = solver.update(jax.grad(loss)(params), state, params)
    ...   params = optax.apply_updates(params, updates)
    ...   print(f'step {step}: loss {loss(params):.3f}')
    step 1: loss 18.632
    step 2: loss 18.161
    step 3: loss 17.624
    step 4: loss 17.038
    step 5: loss 16.418

  References:
    Chen and Gu, `Closing the Generalization Gap of Adaptive Gradient Methods in Training
    Deep Neural Networks <https://arxiv.org/abs/1806.06763>`_, 2018

    Chen, Zhou, Tang, Yang, Cao and Gu, Closing the Generalization Gap of Adaptive Gradient
    Methods in Training Deep Neural Networks, Proceedings of the 29th International Joint
    Conference on Artificial Intelligence (IJCAI), pages 3267-3275, 2020

  .. seealso:: :func:`padam_jax.scale_by_padam`, :func:`padam_jax.padamw`.
  """
  scaling = scale_by_padam(
    b1, b2, partial, eps, amsgrad, exact_bias_correction=exact_bias_correction, mu_dtype=mu_dtype
  )
  return _assemble(scaling, learning_rate, weight_decay, mask, decoupled=False)


def padamw(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  partial: ScalarOrSchedule = 0.125,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  *,
  amsgrad: bool = True,
  exact_bias_correction: bool = False,
  mu_dtype: Any | None = None,
  mask: MaskOrFn = None,
) -> optax.GradientTransformation:
  r"""Padam with decoupled weight decay, as AdamW is Adam with decoupled weight decay.

  The decay bypasses the partially adaptive scaling (as in ``torch.optim.AdamW``), so that
  it acts with the same strength on every coordinate: this is
  ``chain(scale_by_padam, decoupled decay, -learning_rate)``. With :math:`r_t` the output of
  :func:`padam_jax.scale_by_padam` for the raw gradient :math:`g_t` (see there),

  .. math::

    u_t \leftarrow -\alpha_t \bigl(r_t + \lambda \, \theta_{t-1}\bigr)

  where :math:`\alpha_t` is the learning rate and :math:`\lambda` the weight decay.

  Args:
    learning_rate: A fixed step size or a schedule of the step count.
    b1: Decay rate of the first moment, in [0, 1).
    b2: Decay rate of the second moment, in [0, 1).
    partial: The partial power p in [0, 1/2], a number or a schedule.
    eps: Added to the square root inside the power.
    weight_decay: Decoupled decay coefficient :math:`\lambda` (multiplied by the learning
      rate, as in ``torch.optim.AdamW``).
    amsgrad: Whether to divide by the running maximum of the second moment.
    exact_bias_correction: See :func:`padam_jax.scale_by_padam`.
    mu_dtype: Optional dtype of the first moment; if ``None``, each parameter's own.
    mask: Which leaves the weight decay applies to (a pytree of booleans or a function of
      the parameters that returns one); all if ``None``.

  Returns:
    The corresponding :class:`optax.GradientTransformation`.

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import padam_jax
    >>> params = {'w': jnp.array([1.0, 2.0]), 'b': jnp.array([1.0])}
    >>> solver = padam_jax.padamw(
    ...   learning_rate=0.1, weight_decay=0.5, mask={'w': True, 'b': False}
    ... )
    >>> zero_grads = {'w': jnp.zeros(2), 'b': jnp.zeros(1)}
    >>> updates, _ = solver.update(zero_grads, solver.init(params), params)
    >>> print(updates['w'], updates['b'] == 0)  # a zero gradient leaves the decay, on 'w' only
    [-0.05 -0.1 ] [ True]

  References:
    Chen and Gu, `Closing the Generalization Gap of Adaptive Gradient Methods in Training
    Deep Neural Networks <https://arxiv.org/abs/1806.06763>`_, 2018

    Chen, Zhou, Tang, Yang, Cao and Gu, Closing the Generalization Gap of Adaptive Gradient
    Methods in Training Deep Neural Networks, Proceedings of the 29th International Joint
    Conference on Artificial Intelligence (IJCAI), pages 3267-3275, 2020

    Loshchilov and Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, 2019

  .. seealso:: :func:`padam_jax.padam`.
  """
  scaling = scale_by_padam(
    b1, b2, partial, eps, amsgrad, exact_bias_correction=exact_bias_correction, mu_dtype=mu_dtype
  )
  return _assemble(scaling, learning_rate, weight_decay, mask, decoupled=True)


def sgdm(
  learning_rate: ScalarOrSchedule,
  momentum: float = 0.9,
  weight_decay: float = 0.0,
  *,
  nesterov: bool = False,
  mask: MaskOrFn = None,
) -> optax.GradientTransformation:
  """SGD with momentum as ``torch.optim.SGD``: ``buf = momentum * buf + g``.

  Args:
    learning_rate: A fixed step size or a schedule of the step count.
    momentum: Decay of the momentum buffer, in [0, 1).
    weight_decay: L2 coefficient added to the gradient, as PyTorch's ``weight_decay=``.
    nesterov: Whether to use Nesterov momentum (``torch.optim.SGD(nesterov=True)``).
    mask: Which leaves the weight decay applies to (a pytree of booleans or a function of
      the parameters that returns one); all if ``None``.

  Returns:
    The corresponding :class:`optax.GradientTransformation`.
  """
  momentum = real_hyperparameter(momentum)
  check_hyperparameter('momentum', momentum, 0.0, 1.0, high_inclusive=False)
  return _assemble(
    optax.trace(decay=momentum, nesterov=nesterov),
    learning_rate,
    weight_decay,
    mask,
    decoupled=False,
  )


def adam(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  *,
  mu_dtype: Any | None = None,
  mask: MaskOrFn = None,
) -> optax.GradientTransformation:
  """Adam as ``torch.optim.Adam`` (coupled L2 weight decay).

  Args:
    learning_rate: A fixed step size or a schedule of the step count.
    b1: Decay rate of the first moment, in [0, 1).
    b2: Decay rate of the second moment, in [0, 1).
    eps: Added to the bias-corrected square root of the second moment.
    weight_decay: L2 coefficient added to the gradient, as PyTorch's ``weight_decay=``.
    mu_dtype: Optional dtype of the first moment; if ``None``, each parameter's own.
    mask: Which leaves the weight decay applies to (a pytree of booleans or a function of
      the parameters that returns one); all if ``None``.

  Returns:
    The corresponding :class:`optax.GradientTransformation`.
  """
  return _assemble(
    scale_by_amsgrad_torch(b1, b2, eps, amsgrad=False, mu_dtype=mu_dtype),
    learning_rate,
    weight_decay,
    mask,
    decoupled=False,
  )


def amsgrad(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.0,
  *,
  mu_dtype: Any | None = None,
  mask: MaskOrFn = None,
) -> optax.GradientTransformation:
  """AMSGrad as ``torch.optim.Adam(amsgrad=True)``: maximum of the raw ``nu``.

  This is not :func:`optax.amsgrad`, which takes the maximum of the bias-corrected ``nu``
  (docs/recipes.md#amsgrad-in-optax-and-in-pytorch).

  Args:
    learning_rate: A fixed step size or a schedule of the step count.
    b1: Decay rate of the first moment, in [0, 1).
    b2: Decay rate of the second moment, in [0, 1).
    eps: Added to the bias-corrected square root of the second moment.
    weight_decay: L2 coefficient added to the gradient, as PyTorch's ``weight_decay=``.
    mu_dtype: Optional dtype of the first moment; if ``None``, each parameter's own.
    mask: Which leaves the weight decay applies to (a pytree of booleans or a function of
      the parameters that returns one); all if ``None``.

  Returns:
    The corresponding :class:`optax.GradientTransformation`.
  """
  return _assemble(
    scale_by_amsgrad_torch(b1, b2, eps, amsgrad=True, mu_dtype=mu_dtype),
    learning_rate,
    weight_decay,
    mask,
    decoupled=False,
  )


def adamw(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  weight_decay: float = 0.01,
  *,
  mu_dtype: Any | None = None,
  mask: MaskOrFn = None,
) -> optax.GradientTransformation:
  """AdamW as ``torch.optim.AdamW``: ``theta -= lr * (adam_dir + wd * theta)``.

  Args:
    learning_rate: A fixed step size or a schedule of the step count.
    b1: Decay rate of the first moment, in [0, 1).
    b2: Decay rate of the second moment, in [0, 1).
    eps: Added to the bias-corrected square root of the second moment.
    weight_decay: Decoupled decay coefficient, multiplied by the learning rate (PyTorch's
      default 0.01).
    mu_dtype: Optional dtype of the first moment; if ``None``, each parameter's own.
    mask: Which leaves the weight decay applies to (a pytree of booleans or a function of
      the parameters that returns one); all if ``None``.

  Returns:
    The corresponding :class:`optax.GradientTransformation`.
  """
  return _assemble(
    scale_by_amsgrad_torch(b1, b2, eps, amsgrad=False, mu_dtype=mu_dtype),
    learning_rate,
    weight_decay,
    mask,
    decoupled=True,
  )


@dataclasses.dataclass(frozen=True)
class RegisteredOptimizer:
  """An optimizer of ``REGISTRY``: its factory and what a training run needs to know of it.

  Attributes:
    factory: Builds the optimizer from keyword arguments (``learning_rate=`` and those of
      the training configuration it declares: ``weight_decay``, ``partial``, ``b1``, ...).
    learning_rate: Its default learning rate (the student reproduction's Table 1).
    twin: The name of its PyTorch twin, a key of ``padam_jax.reference.twins.TWINS``.
    preset_learning_rates: Default learning rates of the presets
      (``padam_jax.training.config.PRESETS``) that differ from ``learning_rate``.
  """

  factory: Callable[..., optax.GradientTransformation]
  learning_rate: float
  twin: str
  preset_learning_rates: Mapping[str, float] = dataclasses.field(default_factory=dict)

  def default_learning_rate(self, preset: str) -> float:
    """The learning rate a run under ``preset`` takes when it sets none."""
    return self.preset_learning_rates.get(preset, self.learning_rate)

  def takes(self, argument: str) -> bool:
    """Whether the factory has a keyword argument ``argument`` (e.g. ``'momentum'``)."""
    return argument in inspect.signature(self.factory).parameters

  @property
  def takes_partial(self) -> bool:
    """Whether it has Padam's partial power ``p`` (``partial=``)."""
    return self.takes('partial')


# The one list of optimizers: the command line's choices, the default learning rates and the
# PyTorch cross-checks read it. Betas 0.9/0.999 and momentum 0.9 are the factories' defaults.
REGISTRY: dict[str, RegisteredOptimizer] = {
  'padam': RegisteredOptimizer(padam, 0.1, twin='reference.optim.Padam'),
  'padamw': RegisteredOptimizer(padamw, 0.1, twin='pytorch_optimizer.PAdam(weight_decouple)'),
  'sgdm': RegisteredOptimizer(sgdm, 0.1, twin='torch.optim.SGD(momentum=0.9)'),
  'adam': RegisteredOptimizer(adam, 1e-3, twin='torch.optim.Adam'),
  'amsgrad': RegisteredOptimizer(amsgrad, 1e-3, twin='torch.optim.Adam(amsgrad=True)'),
  'adamw': RegisteredOptimizer(adamw, 1e-3, twin='torch.optim.AdamW'),
}


class _Factories(Mapping[str, Callable[..., optax.GradientTransformation]]):
  """``REGISTRY``'s factories by name, read-only and always current."""

  def __getitem__(self, name: str) -> Callable[..., optax.GradientTransformation]:
    return REGISTRY[name].factory

  def __iter__(self) -> Iterator[str]:
    return iter(REGISTRY)

  def __len__(self) -> int:
    return len(REGISTRY)


OPTIMIZERS: Mapping[str, Callable[..., optax.GradientTransformation]] = _Factories()


def registered(name: str) -> RegisteredOptimizer:
  """``REGISTRY[name]``; an unknown name raises ``ValueError`` listing the known ones."""
  try:
    return REGISTRY[name]
  except KeyError:
    raise ValueError(
      f'unknown optimizer {name!r}; choose one of {", ".join(sorted(REGISTRY))}'
    ) from None


def get_optimizer(name: str, **hyperparameters: Any) -> optax.GradientTransformation:
  """Builds the optimizer registered as ``name`` (see ``REGISTRY``).

  Args:
    name: A key of ``REGISTRY`` (and ``OPTIMIZERS``): ``'padam'``, ``'padamw'``, ``'sgdm'``,
      ``'adam'``, ``'amsgrad'`` or ``'adamw'``.
    **hyperparameters: The factory's keyword arguments (``learning_rate=`` included).

  Returns:
    The corresponding :class:`optax.GradientTransformation`.

  Raises:
    ValueError: ``name`` is not registered.
  """
  return registered(name).factory(**hyperparameters)
