"""Optimizer trajectories on a small deterministic problem, in JAX and in PyTorch.

A multi-leaf parameter tree follows gradients that depend on the parameters
(``a * cos(theta) + b * theta + noise_t``) for a few hundred steps; the same
problem runs under our optax optimizers and under PyTorch oracles
(:mod:`padam_jax.reference.twins`: the authors' Padam as re-written in
:mod:`padam_jax.reference.optim`, ``torch.optim`` and ``pytorch_optimizer.PAdam``), and the
trajectories are compared in float64.
With ``as_complex=True`` each leaf's last axis of size 2 holds the real and
imaginary parts of a complex parameter (``torch.view_as_real``'s layout): the
gradient is the same function of that real view, the optimizers see complex
parameters. torch is imported only by the functions that run it.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import padam_jax
from padam_jax import alias
from padam_jax.reference import twins

LEAF_SHAPES = {'kernel': (4, 3), 'bias': (5,), 'conv': (2, 3, 2)}
# The complex problem: the same leaves, each with a trailing (real, imaginary) axis.
COMPLEX_LEAF_SHAPES = {k: s + (2,) for k, s in LEAF_SHAPES.items()}


@dataclasses.dataclass(frozen=True)
class Problem:
  """Initial parameters, gradient coefficients and per-step noise (float64)."""

  init: dict[str, np.ndarray]
  a: dict[str, np.ndarray]
  b: dict[str, np.ndarray]
  noise: dict[str, np.ndarray]  # leaf -> (steps, *shape)

  @property
  def steps(self) -> int:
    return next(iter(self.noise.values())).shape[0]

  def to_arrays(self) -> dict[str, np.ndarray]:
    """Flat ``{'init/kernel': ...}`` dict, e.g. for ``np.savez``."""
    return {
      f'{field.name}/{leaf}': value
      for field in dataclasses.fields(self)
      for leaf, value in getattr(self, field.name).items()
    }

  @classmethod
  def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Problem:
    fields: dict[str, dict[str, np.ndarray]] = {f.name: {} for f in dataclasses.fields(cls)}
    for key in arrays.keys():
      if '/' in key and key.split('/')[0] in fields:
        field, leaf = key.split('/', 1)
        fields[field][leaf] = np.asarray(arrays[key], np.float64)
    return cls(**fields)


def make_problem(
  steps: int = 250, seed: int = 0, shapes: dict[str, tuple[int, ...]] = LEAF_SHAPES
) -> Problem:
  """A reproducible problem; ``b > 0`` keeps it bounded, ``a`` makes it curved."""
  rng = np.random.default_rng(seed)
  draw = lambda fn: {k: fn(s) for k, s in shapes.items()}  # noqa: E731
  return Problem(
    init=draw(lambda s: rng.normal(0.0, 1.0, s)),
    a=draw(lambda s: rng.uniform(0.5, 2.0, s)),
    b=draw(lambda s: rng.uniform(0.05, 0.5, s)),
    noise=draw(lambda s: rng.normal(0.0, 0.3, (steps,) + s)),
  )


# Settings checked against the authors' Padam: (name, hyperparameters).
# Keys: lr, b1, b2, eps, weight_decay, partial, amsgrad, exact_bias_correction.
PADAM_SETTINGS: dict[str, dict[str, Any]] = {
  'default_p1/8': dict(lr=0.1, partial=0.125),
  'p1/8_wd5e-4': dict(lr=0.1, partial=0.125, weight_decay=5e-4),
  'p1/4_betas0.8,0.99_wd5e-3': dict(lr=0.02, partial=0.25, b1=0.8, b2=0.99, weight_decay=5e-3),
  'p1/16_no_amsgrad': dict(lr=0.1, partial=0.0625, amsgrad=False),
  'p0.3_betas0.95,0.9999_wd1e-4': dict(lr=0.05, partial=0.3, b1=0.95, b2=0.9999, weight_decay=1e-4),
  'p1/2_lr1e-3': dict(lr=1e-3, partial=0.5),
  'p0_heavy_ball': dict(lr=0.05, partial=0.0, weight_decay=1e-3),
  'p1/8_exact_bias_eps1e-3': dict(lr=0.1, partial=0.125, eps=1e-3, exact_bias_correction=True),
}


def padam_kwargs(setting: dict[str, Any]) -> dict[str, Any]:
  """Our ``padam_jax.padam`` keyword arguments for a setting."""
  s = {**twins.PADAM_DEFAULTS, **setting}
  return dict(
    learning_rate=s['lr'],
    b1=s['b1'],
    b2=s['b2'],
    eps=s['eps'],
    weight_decay=s['weight_decay'],
    partial=s['partial'],
    amsgrad=s['amsgrad'],
    exact_bias_correction=s['exact_bias_correction'],
  )


def make_complex_problem(steps: int = 250, seed: int = 1) -> Problem:
  """A problem for complex parameters (run it with ``as_complex=True``)."""
  return make_problem(steps, seed, COMPLEX_LEAF_SHAPES)


def jax_trajectory(
  problem: Problem, optimizer: optax.GradientTransformation, *, as_complex: bool = False
) -> np.ndarray:
  """Parameters after every step, ``(steps, n)`` float64, under ``optimizer``.

  Runs under ``jax.enable_x64`` and ``jax.jit`` with a ``lax.scan`` over steps.
  ``as_complex``: the optimizer sees complex128 parameters (see the module doc).
  """
  with jax.enable_x64(True):
    as_real, as_param = (
      (_jnp_view_as_real, _jnp_view_as_complex) if as_complex else (lambda x: x, lambda x: x)
    )
    params = jax.tree.map(lambda x: as_param(jnp.asarray(x)), problem.init)
    a, b = jax.tree.map(jnp.asarray, problem.a), jax.tree.map(jnp.asarray, problem.b)
    noise = jax.tree.map(jnp.asarray, problem.noise)

    def grad(p: jax.Array, a_: jax.Array, b_: jax.Array, n: jax.Array) -> jax.Array:
      x = as_real(p)
      return as_param(a_ * jnp.cos(x) + b_ * x + n)

    def step(
      carry: tuple[optax.Params, optax.OptState], noise_t: dict[str, jax.Array]
    ) -> tuple[tuple[optax.Params, optax.OptState], np.ndarray | jax.Array]:
      params, state = carry
      grads = jax.tree.map(grad, params, a, b, noise_t)
      updates, state = optimizer.update(grads, state, params)
      params = jax.tree.map(jnp.add, params, updates)
      return (params, state), _flatten(jax.tree.map(as_real, params), jnp)

    run = jax.jit(lambda p: jax.lax.scan(step, (p, optimizer.init(p)), noise)[1])
    return np.asarray(run(params))


def torch_trajectory(
  problem: Problem, make_optimizer: twins.MakeOptimizer, *, as_complex: bool = False
) -> np.ndarray:
  """Parameters after every step, ``(steps, n)`` float64, under a torch optimizer.

  ``make_optimizer(list_of_tensors)`` builds the ``torch.optim.Optimizer``;
  ``as_complex``: it gets complex128 tensors (see the module doc).
  """
  import torch

  as_real, as_param = (
    (torch.view_as_real, torch.view_as_complex) if as_complex else (lambda x: x, lambda x: x)
  )
  params = {
    k: as_param(torch.tensor(v, dtype=torch.float64)).requires_grad_(True)
    for k, v in problem.init.items()
  }

  def as_t(tree: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in tree.items()}

  a, b = as_t(problem.a), as_t(problem.b)
  optimizer = make_optimizer(list(params.values()))
  rows = []
  for t in range(problem.steps):
    with torch.no_grad():
      for k, p in params.items():
        noise_t = torch.tensor(problem.noise[k][t], dtype=torch.float64)
        x = as_real(p)
        p.grad = as_param(a[k] * torch.cos(x) + b[k] * x + noise_t)
    optimizer.step()
    rows.append(_flatten({k: as_real(p.detach()).numpy() for k, p in params.items()}, np))
  return np.stack(rows)


# Oracles written by others: name -> (our optimizer, a torch make_optimizer).
ORACLES: dict[str, tuple[Any, Any]] = {
  'padam p=1/2 eps=0 vs torch Adam(amsgrad=True)': (
    lambda: padam_jax.padam(0.01, partial=0.5, eps=0.0, weight_decay=1e-3),
    twins.torch_optim('Adam', lr=0.01, eps=0.0, weight_decay=1e-3, amsgrad=True),
  ),
  'padam amsgrad=False vs pytorch_optimizer PAdam': (
    lambda: padam_jax.padam(0.1, partial=0.125, weight_decay=5e-4, amsgrad=False),
    twins.pytorch_optimizer_padam(lr=0.1, partial=0.125, weight_decay=5e-4),
  ),
  'padamw amsgrad=False vs PAdam(weight_decouple)': (
    lambda: padam_jax.padamw(0.1, partial=0.25, weight_decay=1e-2, amsgrad=False),
    twins.pytorch_optimizer_padam(lr=0.1, partial=0.25, weight_decay=1e-2, weight_decouple=True),
  ),
  'sgdm vs torch SGD(momentum=0.9)': (
    lambda: padam_jax.sgdm(0.1, momentum=0.9, weight_decay=5e-3),
    twins.torch_optim('SGD', lr=0.1, momentum=0.9, weight_decay=5e-3),
  ),
  'sgdm nesterov vs torch SGD(nesterov)': (
    lambda: padam_jax.sgdm(0.05, momentum=0.8, weight_decay=5e-4, nesterov=True),
    twins.torch_optim('SGD', lr=0.05, momentum=0.8, weight_decay=5e-4, nesterov=True),
  ),
  'adam vs torch Adam': (
    lambda: padam_jax.adam(1e-2, weight_decay=5e-3),
    twins.torch_optim('Adam', lr=1e-2, weight_decay=5e-3),
  ),
  'amsgrad vs torch Adam(amsgrad=True)': (
    lambda: padam_jax.amsgrad(1e-2, b1=0.8, b2=0.99, eps=1e-6, weight_decay=5e-3),
    twins.torch_optim(
      'Adam', lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=5e-3, amsgrad=True
    ),
  ),
  'adamw vs torch AdamW': (
    lambda: padam_jax.adamw(1e-2, weight_decay=0.05),
    twins.torch_optim('AdamW', lr=1e-2, weight_decay=0.05),
  ),
}


# Complex parameters, float64: name -> (our optimizer, a torch make_optimizer, and
# whether torch gets the complex parameters themselves or their real view). torch.optim
# treats a complex parameter as its view_as_real pair; the oracles without complex
# support (the re-written authors' Padam, PAdam) run on that real view directly.
COMPLEX_ORACLES: dict[str, tuple[Any, Any, bool]] = {
  'complex adam vs torch Adam': (
    lambda: padam_jax.adam(1e-2, weight_decay=5e-3),
    twins.torch_optim('Adam', lr=1e-2, weight_decay=5e-3),
    True,
  ),
  'complex amsgrad vs torch Adam(amsgrad=True)': (
    lambda: padam_jax.amsgrad(1e-2, b1=0.8, b2=0.99, eps=1e-6, weight_decay=5e-3),
    twins.torch_optim(
      'Adam', lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=5e-3, amsgrad=True
    ),
    True,
  ),
  'complex adamw vs torch AdamW': (
    lambda: padam_jax.adamw(1e-2, weight_decay=0.05),
    twins.torch_optim('AdamW', lr=1e-2, weight_decay=0.05),
    True,
  ),
  'complex sgdm vs torch SGD(momentum=0.9)': (
    lambda: padam_jax.sgdm(0.1, momentum=0.9, weight_decay=5e-3),
    twins.torch_optim('SGD', lr=0.1, momentum=0.9, weight_decay=5e-3),
    True,
  ),
  'complex padam p=1/2 eps=0 vs torch Adam(amsgrad=True)': (
    lambda: padam_jax.padam(0.01, partial=0.5, eps=0.0, weight_decay=1e-3),
    twins.torch_optim('Adam', lr=0.01, eps=0.0, weight_decay=1e-3, amsgrad=True),
    True,
  ),
  'complex padam vs reference Padam on view_as_real': (
    lambda: padam_jax.padam(0.1, partial=0.125, weight_decay=5e-4),
    twins.torch_reference_padam(dict(lr=0.1, partial=0.125, weight_decay=5e-4)),
    False,
  ),
  'complex padamw amsgrad=False vs PAdam(weight_decouple) on view_as_real': (
    lambda: padam_jax.padamw(0.1, partial=0.25, weight_decay=1e-2, amsgrad=False),
    twins.pytorch_optimizer_padam(lr=0.1, partial=0.25, weight_decay=1e-2, weight_decouple=True),
    False,
  ),
}


def complex_trajectories(name: str, problem: Problem) -> tuple[np.ndarray, np.ndarray]:
  """Ours and the oracle's trajectories for ``COMPLEX_ORACLES[name]`` (real views)."""
  ours_fn, torch_fn, torch_complex = COMPLEX_ORACLES[name]
  ours = jax_trajectory(problem, ours_fn(), as_complex=True)
  return ours, torch_trajectory(problem, torch_fn, as_complex=torch_complex)


def optimizer_twins(
  name: str, learning_rate: float, weight_decay: float, partial: float = 0.125
) -> tuple[Any, Any]:
  """Our optimizer ``name`` and a ``make_optimizer`` for its PyTorch twin
  (``padam_jax.reference.twins.twin_of``; ours with the arguments the twin asks for)."""
  twin = twins.twin_of(name)  # checks name
  optimizer = alias.REGISTRY[name]
  kwargs = dict(learning_rate=learning_rate, weight_decay=weight_decay, **twin.ours)
  if optimizer.takes_partial:
    kwargs['partial'] = partial
  return optimizer.factory(**kwargs), twin.make(learning_rate, weight_decay, partial)


def max_relative_deviation(ours: np.ndarray, reference: np.ndarray) -> float:
  """max over steps of ``|ours - ref|_inf / |ref|_inf``."""
  ours, reference = np.asarray(ours), np.asarray(reference)
  if ours.shape != reference.shape:
    raise ValueError(f'shapes differ: {ours.shape} vs {reference.shape}')
  scale = np.maximum(np.abs(reference).max(axis=1), np.finfo(np.float64).tiny)
  return float((np.abs(ours - reference).max(axis=1) / scale).max())


def _jnp_view_as_real(x: jax.Array) -> jax.Array:
  return jnp.stack([jnp.real(x), jnp.imag(x)], axis=-1)


def _jnp_view_as_complex(x: jax.Array) -> jax.Array:
  return jax.lax.complex(x[..., 0], x[..., 1])


def _flatten(tree: dict, xp: types.ModuleType) -> np.ndarray | jax.Array:
  return xp.concatenate([xp.ravel(tree[k]) for k in sorted(tree)])


def padam_jax_optimizer(setting: dict[str, Any]) -> optax.GradientTransformation:
  """Our ``padam`` for a setting (a convenience for the fixture and tests)."""
  return padam_jax.padam(**padam_kwargs(setting))
