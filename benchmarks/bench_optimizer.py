"""Optimizer-update throughput: padam vs optax.amsgrad, and the PyTorch references.

    python -m benchmarks.bench_optimizer [--rounds 7 --iters 10]

One jitted update with donated parameters and state (``params, state <- step(...)``)
on a tree shaped like CIFAR ResNet-18 (62 float32 leaves, 11,173,962 values).
Every variant is timed in the same rounds, interleaved, and reported as the median
time per update, its ratio to ``optax.amsgrad``, and the fraction of the machine's
copy bandwidth it reaches (9 arrays of the tree's size move per update: params,
grads, mu, nu, nu_max read; params, mu, nu, nu_max written).
"""

import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

import padam_jax

_ROUNDS = flags.DEFINE_integer('rounds', 7, 'Timing rounds (median reported).')
_ITERS = flags.DEFINE_integer('iters', 10, 'Updates per round and variant.')
_TORCH = flags.DEFINE_bool('torch', True, 'Also time the PyTorch references.')
_VECTOR_WIDTH = flags.DEFINE_integer(
  'cpu_vector_width',
  0,
  'If > 0, compile every JAX variant with XLA:CPU '
  'xla_cpu_prefer_vector_width set to this (e.g. 512 on AVX-512 machines).',
)

ARRAYS_MOVED = 9


def resnet18_shapes(num_classes: int = 10) -> list[tuple[int, ...]]:
  """Parameter shapes of CIFAR ResNet-18 (HWIO kernels, BN scale and bias)."""
  shapes = [(3, 3, 3, 64), (64,), (64,)]
  cin = 64
  for width, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
    for block in range(2):
      shapes += [(3, 3, cin, width), (width,), (width,), (3, 3, width, width), (width,), (width,)]
      if block == 0 and (stride != 1 or cin != width):
        shapes += [(1, 1, cin, width), (width,), (width,)]
      cin = width
  return shapes + [(512, num_classes), (num_classes,)]


def _tree(shapes, seed):
  keys = jax.random.split(jax.random.key(seed), len(shapes))
  return [jax.random.normal(k, s, jnp.float32) * 0.05 for k, s in zip(keys, shapes, strict=True)]


def jax_variant(tx: optax.GradientTransformation, shapes) -> Callable[[], None]:
  """A closure running one donated, jitted update and blocking on it."""

  def _step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  options = {'xla_cpu_prefer_vector_width': _VECTOR_WIDTH.value} if _VECTOR_WIDTH.value else None
  step = jax.jit(_step, donate_argnums=(0, 1), compiler_options=options)
  params = _tree(shapes, 0)
  grads = _tree(shapes, 1)
  carry = [params, tx.init(params)]

  def run():
    carry[0], carry[1] = step(carry[0], carry[1], grads)
    jax.block_until_ready(carry[0])

  return run


def torch_variants(shapes) -> dict[str, Callable[[], None]]:
  import torch

  from padam_jax.reference.optim import Padam

  def make(build):
    params = [torch.randn(s[::-1]) * 0.05 for s in shapes]
    for p in params:
      p.requires_grad_(True)
      p.grad = torch.randn_like(p)
    optimizer = build(params)
    return optimizer.step

  return {
    'torch: authors\' Padam p=1/8 (reference)': make(lambda p: Padam(p, lr=0.1, partial=0.125)),
    'torch: Adam(amsgrad=True, fused=True)': make(
      lambda p: torch.optim.Adam(p, lr=1e-3, amsgrad=True, fused=True)
    ),
  }


def copy_bandwidth(num_values: int, rounds: int) -> float:
  """Bytes/s of the best streaming copy (numpy copyto, or a donated jitted x + 1)."""
  src = np.random.default_rng(0).standard_normal(num_values).astype(np.float32)
  dst = np.empty_like(src)
  add = jax.jit(lambda x: x + 1, donate_argnums=0)
  x = [jnp.asarray(src)]

  def jax_copy():
    x[0] = add(x[0])
    x[0].block_until_ready()

  best = []
  for fn in (lambda: np.copyto(dst, src), jax_copy):
    fn()
    best.append(min(_time(fn, 5) for _ in range(rounds)))
  return 2 * src.nbytes / min(best)


def _time(fn: Callable[[], None], iters: int) -> float:
  start = time.perf_counter()
  for _ in range(iters):
    fn()
  return (time.perf_counter() - start) / iters


def main(argv):
  del argv
  shapes = resnet18_shapes()
  num_values = sum(int(np.prod(s)) for s in shapes)
  print(
    f'tree: {len(shapes)} leaves, {num_values:,} float32 values; '
    f'{jax.device_count()} {jax.default_backend()} device(s)'
  )
  anchor = 'optax.amsgrad'
  variants = {
    anchor: jax_variant(optax.amsgrad(1e-3), shapes),
    'padam p=1/8': jax_variant(padam_jax.padam(0.1), shapes),
    'padam p=1/8 wd=5e-4': jax_variant(padam_jax.padam(0.1, weight_decay=5e-4), shapes),
    'padam p=1/4': jax_variant(padam_jax.padam(0.1, partial=0.25), shapes),
    'padam p=1/16': jax_variant(padam_jax.padam(0.1, partial=0.0625), shapes),
    'padam p=0.3': jax_variant(padam_jax.padam(0.1, partial=0.3), shapes),
    'padam p=1/2': jax_variant(padam_jax.padam(0.1, partial=0.5), shapes),
    'padam p traced (inject_hyperparams)': jax_variant(
      optax.inject_hyperparams(padam_jax.padam)(learning_rate=0.1, partial=0.125), shapes
    ),
    'padam_jax.amsgrad (torch convention)': jax_variant(padam_jax.amsgrad(1e-3), shapes),
  }
  if _TORCH.value:
    variants.update(torch_variants(shapes))
  for fn in variants.values():  # compile and warm up
    fn()
    fn()
  times: dict[str, list[float]] = {name: [] for name in variants}
  for _ in range(_ROUNDS.value):
    for name, fn in variants.items():
      times[name].append(_time(fn, _ITERS.value))
  bandwidth = copy_bandwidth(num_values, _ROUNDS.value)
  median = {name: statistics.median(t) for name, t in times.items()}
  moved = ARRAYS_MOVED * 4 * num_values
  print(f'copy bandwidth: {bandwidth / 1e9:.1f} GB/s; {moved / 1e6:.0f} MB moved per update\n')
  print('| update | ms | vs optax.amsgrad | of copy bandwidth |')
  print('|---|---|---|---|')
  for name, seconds in median.items():
    print(
      f'| {name} | {seconds * 1e3:.1f} | {seconds / median[anchor]:.2f}x | '
      f'{moved / seconds / bandwidth:.0%} |'
    )


if __name__ == '__main__':
  app.run(main)
