"""One convolution's forward + backward: XLA's lowering vs patches + matmul vs PyTorch.

    python -m experiments.bench_conv [--batch_size 128 --repeats 5]

For the convolution shapes of our models (map size, channels, kernel, stride), the
median time of a jitted forward + backward (gradients of input and kernel) with
``conv_lowering.conv2d_xla`` and ``conv_lowering.conv2d_patches``, and of PyTorch's
``conv2d`` forward + backward, on one device, interleaved. It shows where
``conv_lowering.use_patches`` picks patches on CPU and what remains XLA's.
"""

import statistics
import time

from absl import app, flags
import jax
import jax.numpy as jnp

from padam_jax.models import conv_lowering

_BATCH = flags.DEFINE_integer('batch_size', 128, 'Images per call.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed calls per variant.')

# (map size, in channels, out channels, kernel, stride): VGG's last block, ResNet's stages.
SHAPES = [(2, 512, 512, 3, 1), (4, 512, 512, 3, 1), (8, 256, 256, 3, 1),
          (16, 128, 128, 3, 1), (32, 64, 64, 3, 1), (32, 64, 128, 3, 2),
          (32, 64, 128, 1, 2), (32, 3, 64, 3, 1)]


def _jax_fn(lowering, shape):
  size, cin, cout, k, stride = shape
  x = jax.random.normal(jax.random.key(0), (_BATCH.value, size, size, cin))
  kernel = jax.random.normal(jax.random.key(1), (k, k, cin, cout)) * 0.05
  grad = jax.jit(jax.grad(lambda x, w: jnp.sum(lowering(x, w, stride, (k - 1) // 2) ** 2),
                          argnums=(0, 1)))
  return lambda: jax.block_until_ready(grad(x, kernel))


def _torch_fn(shape):
  import torch  # pylint: disable=import-outside-toplevel
  size, cin, cout, k, stride = shape
  x = torch.randn(_BATCH.value, cin, size, size, requires_grad=True)
  w = (torch.randn(cout, cin, k, k) * 0.05).requires_grad_(True)

  def run():
    x.grad = w.grad = None
    (torch.nn.functional.conv2d(x, w, stride=stride, padding=(k - 1) // 2) ** 2).sum().backward()

  return run


def main(argv):
  del argv
  print(f'batch {_BATCH.value}, one {jax.default_backend()} device; forward + backward ms\n')
  print('| map | in -> out | kernel/stride | XLA conv | patches | PyTorch | XLA / patches |'
        ' patches chosen |')
  print('|---|---|---|---|---|---|---|---|')
  for shape in SHAPES:
    fns = {'xla': _jax_fn(conv_lowering.conv2d_xla, shape),
           'patches': _jax_fn(conv_lowering.conv2d_patches, shape),
           'torch': _torch_fn(shape)}
    for fn in fns.values():
      fn()
    times = {name: [] for name in fns}
    for _ in range(_REPEATS.value):
      for name, fn in fns.items():
        start = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - start)
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    size, cin, cout, k, stride = shape
    chosen = conv_lowering.use_patches(size, size, cin, stride, backend='cpu')
    print(f'| {size}x{size} | {cin} -> {cout} | {k}x{k}/{stride} | {ms["xla"]:.1f} | '
          f'{ms["patches"]:.1f} | {ms["torch"]:.1f} | {ms["xla"] / ms["patches"]:.2f} | '
          f'{"yes" if chosen else "no"} |', flush=True)


if __name__ == '__main__':
  app.run(main)
