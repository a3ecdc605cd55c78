"""The pure training functions: the train state, one train step, one evaluation batch's
sums and the keys of a run's randomness.

``train_step`` is a pure function of ``(state, rng, images, labels)``, so it can be
vmapped over a stack of states (several hyperparameter settings in one program,
``padam_jax.training.sweep``); ``padam_jax.training.trainer`` compiles it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, cast

import flax
import jax
import jax.numpy as jnp
import optax

from padam_jax import data as data_lib
from padam_jax.distributed import sharding


class TrainState(flax.struct.PyTreeNode):
  """Everything that changes during training (randomness is derived from the step)."""

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def init_train_state(
  model: flax.linen.Module,
  tx: optax.GradientTransformation,
  rng: jax.Array,
  image_shape: tuple[int, ...],
  out_sharding: Any = None,
) -> TrainState:
  """Initial parameters, batch statistics and optimizer state (placed by ``out_sharding``)."""

  @functools.partial(jax.jit, out_shardings=out_sharding)
  def init(rng: jax.Array) -> TrainState:
    variables = model.init(rng, jnp.zeros((1, *image_shape), jnp.float32), train=False)
    params = variables['params']
    return TrainState(
      step=jnp.zeros([], jnp.int32),
      params=params,
      batch_stats=variables.get('batch_stats', {}),
      opt_state=tx.init(params),
    )

  return init(rng)


def _sums(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> dict[str, jax.Array]:
  losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
  correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  return {
    'loss_sum': jnp.sum(losses * weights),
    'correct': jnp.sum(correct * weights),
    'count': jnp.sum(weights),
  }


def train_step(
  state: TrainState,
  rng: jax.Array,
  images: jax.Array,
  labels: jax.Array,
  *,
  model: flax.linen.Module,
  tx: optax.GradientTransformation,
  mean: Sequence[float],
  std: Sequence[float],
  compute_dtype: jax.typing.DTypeLike = jnp.float32,
  mesh: jax.sharding.Mesh | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step on a uint8 batch: augment, forward, backward, update.

  Returns the new state and the batch's summed loss, correct count and size.
  """
  if mesh is not None:
    images = sharding.constrain_batch(images, mesh)
    labels = sharding.constrain_batch(labels, mesh)
  with jax.named_scope('augment'):  # scope names label the ops in profiles
    x = data_lib.augment(rng, images, mean, std, dtype=compute_dtype)
  return update_step(state, x, labels, model=model, tx=tx)


def update_step(
  state: TrainState,
  x: jax.Array,
  labels: jax.Array,
  *,
  model: flax.linen.Module,
  tx: optax.GradientTransformation,
) -> tuple[TrainState, dict[str, jax.Array]]:
  """The part of ``train_step`` after augmentation: forward, backward, update on the
  model inputs ``x`` (also fed by other pipelines, e.g. PyTorch's, in cross-checks)."""

  def loss_fn(params: optax.Params) -> tuple[jax.Array, tuple[jax.Array, Any]]:
    logits, updates = model.apply(
      {'params': params, 'batch_stats': state.batch_stats}, x, train=True, mutable=['batch_stats']
    )
    loss = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), labels
    ).mean()
    return loss, (logits, updates['batch_stats'])

  (_, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  with jax.named_scope('optimizer'):
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
  new_state = state.replace(
    step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
  )
  return new_state, _sums(logits, labels, jnp.ones(labels.shape, jnp.float32))


def eval_sums(
  params: Any,
  batch_stats: Any,
  images: jax.Array,
  labels: jax.Array,
  weights: jax.Array,
  *,
  model: flax.linen.Module,
  mean: Sequence[float],
  std: Sequence[float],
  compute_dtype: jax.typing.DTypeLike = jnp.float32,
  mesh: jax.sharding.Mesh | None = None,
) -> dict[str, jax.Array]:
  """Summed loss and correct predictions of one (masked) batch in eval mode."""
  if mesh is not None:
    images = sharding.constrain_batch(images, mesh)
  x = data_lib.normalize(images, mean, std, dtype=compute_dtype)
  # Without ``mutable``, ``apply`` returns the model's output alone.
  logits = cast(
    jax.Array, model.apply({'params': params, 'batch_stats': batch_stats}, x, train=False)
  )
  return _sums(logits, labels, weights)


def derive_key(seed: int | jax.Array, purpose: str, *indices: int) -> jax.Array:
  """The PRNG key of ``purpose`` (init, shuffle, augment) at ``indices`` (epoch, ...)."""
  key = jax.random.fold_in(jax.random.key(seed), ('init', 'shuffle', 'augment').index(purpose))
  for i in indices:
    key = jax.random.fold_in(key, i)
  return key
