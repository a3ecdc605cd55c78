"""Variants of the JAX training step, timed interleaved in one process against the step as it is.

    python -m benchmarks.step_variants --model wrn16_4 --width 0.25 \
        --variants widen17,cond_barrier,sharded_update [--repeats 5]

Each variant changes how the step is traced (a lowering or the update), builds its own
``Trainer`` step (``benchmarks.timed_steps``), and is timed in the same rounds as the
unchanged step (``as_is``), so that both see the same machine. Prints img/s and the speed
of each variant relative to ``as_is`` (median over ``--repeats`` epochs of
``timed_steps.POOL_BATCHES`` steps). These are the experiments behind the table "What was
tried this round" of docs/cpu_profile.md; none of them is part of the library. A variant
holds only for the programs traced in ``build``: a step retraced later (another shape)
would be the unchanged one.

Variants:
- ``widen17``, ``widen24``, ``widen32``: convolutions with at most 16 input and output
  channels (which XLA:CPU runs on Eigen) get zero output channels up to 17 / 24 / 32,
  sliced off again, so that XLA hands them to YNNPACK.
- ``cond_barrier``: the backward pass of XLA's convolutions reads its activation and
  output gradient through a ``lax.cond`` on a runtime predicate, which XLA cannot fuse
  through, so the transposes feeding the kernel gradient copy a stored tensor instead of
  recomputing BatchNorm and ReLU in transposed order.
- ``xla_strided``, ``xla_stem``: XLA's convolution instead of ``conv_lowering``'s patches
  for strided convolutions, or for the RGB stem.
- ``sharded_update``: gradients, optimizer state and update split over the devices along
  the first axis the device count divides (leaves of at least ``--shard_min_size``
  values), the new parameters gathered back.
"""

from __future__ import annotations

import contextlib
import functools
import math
import statistics
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
from absl import flags
from jax.sharding import NamedSharding, PartitionSpec

from benchmarks import timed_steps
from experiments import launch
from padam_jax.distributed import sharding
from padam_jax.models import conv_lowering

VARIANTS = (
  'widen17',
  'widen24',
  'widen32',
  'cond_barrier',
  'xla_strided',
  'xla_stem',
  'sharded_update',
)

_MODEL = flags.DEFINE_string('model', 'wrn16_4', 'Architecture.')
_WIDTH = flags.DEFINE_float('width', 0.25, 'Channel-width multiplier.')
_BATCH = flags.DEFINE_integer('batch_size', 128, 'Images per training step.')
_VARIANTS = flags.DEFINE_list('variants', list(VARIANTS), f'Any of {", ".join(VARIANTS)}.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed epochs per variant.')
_SHARD_MIN = flags.DEFINE_integer('shard_min_size', 1, 'sharded_update: smallest leaf split.')

# The library's functions, which the variants replace while a step is traced.
_XLA_CONV = conv_lowering.conv2d_xla
_USE_PATCHES = conv_lowering.use_patches


@contextlib.contextmanager
def _patched(module, name: str, value) -> Iterator[None]:
  original = getattr(module, name)
  setattr(module, name, value)
  try:
    yield
  finally:
    setattr(module, name, original)


def _widened(channels: int) -> Callable:
  def conv(x, kernel, strides, pad):
    out = kernel.shape[-1]
    if max(x.shape[-1], out) > 16:
      return _XLA_CONV(x, kernel, strides, pad)
    kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, 0), (0, channels - out)))
    return _XLA_CONV(x, kernel, strides, pad)[..., :out]

  return conv


def _cond_barrier_conv() -> Callable:
  def through_cond(value, kernel):
    w = kernel[(0,) * kernel.ndim]  # w == w unless NaN, and then every gradient is NaN
    return jax.lax.cond(w == w, lambda v: v, lambda v: v + w, value)

  @functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
  def conv(x, kernel, strides, pad):
    return _XLA_CONV(x, kernel, strides, pad)

  def forward(x, kernel, strides, pad):
    return _XLA_CONV(x, kernel, strides, pad), (x, kernel)

  def backward(strides, pad, residuals, dy):
    x, kernel = residuals
    x, dy = through_cond(x, kernel), through_cond(dy, kernel)
    return jax.vjp(lambda x, k: _XLA_CONV(x, k, strides, pad), x, kernel)[1](dy)

  conv.defvjp(forward, backward)
  return conv


def _patches_unless(strided: bool, stem: bool) -> Callable:
  def use(height, width, in_channels, strides, backend=None):
    if (strided and strides > 1) or (stem and in_channels <= conv_lowering.PATCHES_MAX_IN_CHANNELS):
      return False
    return _USE_PATCHES(height, width, in_channels, strides, backend)

  return use


def _split_spec(mesh, shape, min_size: int) -> NamedSharding:
  if math.prod(shape) >= min_size:
    for axis, size in enumerate(shape):
      if size % mesh.size == 0:
        return NamedSharding(mesh, PartitionSpec(*[None] * axis, sharding.DATA_AXIS))
  return sharding.replicated(mesh)


def _sharded_update_step(step: timed_steps.JaxStep, min_size: int) -> None:
  """Replaces the trainer's step by one that updates the parameters split over devices."""
  trainer, mesh = step.trainer, step.trainer.mesh
  split = lambda tree: jax.tree.map(  # noqa: E731
    lambda a: jax.lax.with_sharding_constraint(a, _split_spec(mesh, a.shape, min_size)), tree
  )
  split_tx = trainer.tx._replace(update=lambda g, s, p: trainer.tx.update(split(g), s, split(p)))

  step_with_split_tx = functools.partial(trainer._step, tx=split_tx)

  def train_step(state, rng, images, labels):
    state, sums = step_with_split_tx(state, rng, images, labels)
    params = jax.lax.with_sharding_constraint(state.params, sharding.replicated(mesh))
    return state.replace(params=params, opt_state=split(state.opt_state)), sums

  trainer._step = train_step
  step.state = step.state.replace(
    opt_state=jax.tree.map(
      lambda a: jax.device_put(a, _split_spec(mesh, a.shape, min_size)), step.state.opt_state
    )
  )


def build(variant: str) -> timed_steps.JaxStep:
  """The step of ``variant`` (``as_is``: unchanged), traced and compiled."""
  patches = {
    'widen17': (conv_lowering, 'conv2d_xla', _widened(17)),
    'widen24': (conv_lowering, 'conv2d_xla', _widened(24)),
    'widen32': (conv_lowering, 'conv2d_xla', _widened(32)),
    'cond_barrier': (conv_lowering, 'conv2d_xla', _cond_barrier_conv()),
    'xla_strided': (conv_lowering, 'use_patches', _patches_unless(True, False)),
    'xla_stem': (conv_lowering, 'use_patches', _patches_unless(False, True)),
  }
  context = _patched(*patches[variant]) if variant in patches else contextlib.nullcontext()
  with context:
    step = timed_steps.jax_step(_MODEL.value, _WIDTH.value, _BATCH.value)
    if variant == 'sharded_update':
      _sharded_update_step(step, _SHARD_MIN.value)
    step.run()  # traces (with the patch in place) and compiles
  return step


def main(argv) -> None:
  del argv
  unknown = set(_VARIANTS.value) - set(VARIANTS)
  if unknown:
    launch.fail(ValueError(f'--variants: unknown {sorted(unknown)}; choose from {VARIANTS}'))
  names = ['as_is', *_VARIANTS.value]
  print(
    f'{_MODEL.value} width {_WIDTH.value}, batch {_BATCH.value}: JAX {jax.__version__} '
    f'on {jax.device_count()} {jax.default_backend()} device(s)',
    flush=True,
  )
  steps = {name: build(name) for name in names}
  times: dict[str, list[float]] = {name: [] for name in names}
  for _ in range(_REPEATS.value):
    for name, step in steps.items():
      start = time.perf_counter()
      step.run()
      times[name].append((time.perf_counter() - start) / step.steps)
  base = statistics.median(times['as_is'])
  print('\n| variant | img/s | speed vs as_is |\n|---|---:|---:|')
  for name in names:
    median = statistics.median(times[name])
    print(f'| {name} | {_BATCH.value / median:.1f} | {base / median:.3f} |')


if __name__ == '__main__':
  launch.run(main)
