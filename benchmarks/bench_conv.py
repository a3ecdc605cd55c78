"""One convolution at a time: XLA's lowerings vs PyTorch.

    python -m benchmarks.bench_conv [--batch_size 128 --repeats 5]
    python -m benchmarks.bench_conv --mode step_shapes --model wrn16_4 --width 0.25
                                     [--batch_size 128 --devices 4 --repeats 5]

``--mode lowerings`` (the default): for the convolution shapes of our models (map size,
channels, kernel, stride), the median time of a jitted forward + backward (gradients of
input and kernel) with ``conv_lowering.conv2d_xla`` and ``conv_lowering.conv2d_patches``,
and of PyTorch's ``conv2d`` forward + backward, on one device, interleaved. It shows
where ``conv_lowering.use_patches`` picks patches on CPU and what remains XLA's.

``--mode step_shapes``: the convolutions of one model's training step, shapes traced from
the Flax model (``--model``, ``--width``, ``--batch_size``; equal shapes timed once), each
timed alone: forward, input gradient and kernel gradient as three jitted ``jax.vjp``
programs of ``conv_lowering.conv2d`` (the lowering the model uses), the batch split over
``--devices`` host devices as in the training step (``sharding``), against
``nn.Conv2d`` forward and ``torch.autograd.grad`` for each gradient with
``--torch_threads`` threads, interleaved. Each JAX program is labelled with the path
XLA compiled its convolution to (``hlo_text.conv_path``). The JAX programs include what
XLA adds around the convolution (layout transposes; for the kernel gradient of a split
batch, the all-reduce of the partial gradients). Biases are left out. Started through
``launch.run``, so that the host devices exist as in the launchers.
"""

from __future__ import annotations

import collections
import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks import hlo_text, timed_steps
from experiments import launch
from padam_jax import models
from padam_jax.distributed import sharding
from padam_jax.models import conv_lowering, layers

_MODE = flags.DEFINE_enum(
  'mode',
  'lowerings',
  ['lowerings', 'step_shapes'],
  'lowerings: fixed shapes, XLA conv vs patches vs PyTorch; '
  'step_shapes: the convolutions of one model, pass by pass.',
)
_BATCH = flags.DEFINE_integer('batch_size', 128, 'Images per call.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed calls per variant.')
_MODEL = flags.DEFINE_string(
  'model', 'wrn16_4', 'step_shapes: the model whose convolutions are timed.'
)
_WIDTH = flags.DEFINE_float('width', 1.0, 'step_shapes: its channel-width multiplier.')
_DEVICES = flags.DEFINE_integer(
  'devices',
  None,
  'step_shapes: host devices the batch is split over (default: all, as in the launchers).',
)
_TORCH_THREADS = flags.DEFINE_integer('torch_threads', 2, 'step_shapes: PyTorch threads.')

# (map size, in channels, out channels, kernel, stride): VGG's last block, ResNet's stages.
SHAPES = [
  (2, 512, 512, 3, 1),
  (4, 512, 512, 3, 1),
  (8, 256, 256, 3, 1),
  (16, 128, 128, 3, 1),
  (32, 64, 64, 3, 1),
  (32, 64, 128, 3, 2),
  (32, 64, 128, 1, 2),
  (32, 3, 64, 3, 1),
]
PASSES = ('fwd', 'dx', 'dk')
K = TypeVar('K')  # the key of a timed call


def _median_ms(fns: dict[K, Callable[[], object]], repeats: int) -> dict[K, float]:
  """Median milliseconds of each blocking call, after one warm-up call, interleaved."""
  for fn in fns.values():
    fn()
  times: dict[K, list[float]] = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)
  return {name: 1e3 * statistics.median(t) for name, t in times.items()}


# --mode lowerings


def _jax_fn(lowering, shape):
  size, cin, cout, k, stride = shape
  x = jax.random.normal(jax.random.key(0), (_BATCH.value, size, size, cin))
  kernel = jax.random.normal(jax.random.key(1), (k, k, cin, cout)) * 0.05
  grad = jax.jit(
    jax.grad(lambda x, w: jnp.sum(lowering(x, w, stride, (k - 1) // 2) ** 2), argnums=(0, 1))
  )
  return lambda: jax.block_until_ready(grad(x, kernel))


def _torch_fn(shape):
  import torch

  size, cin, cout, k, stride = shape
  x = torch.randn(_BATCH.value, cin, size, size, requires_grad=True)
  w = (torch.randn(cout, cin, k, k) * 0.05).requires_grad_(True)

  def run():
    x.grad = w.grad = None
    (torch.nn.functional.conv2d(x, w, stride=stride, padding=(k - 1) // 2) ** 2).sum().backward()

  return run


def lowerings() -> None:
  print(f'batch {_BATCH.value}, one {jax.default_backend()} device; forward + backward ms\n')
  print(
    '| map | in -> out | kernel/stride | XLA conv | patches | PyTorch | XLA / patches |'
    ' patches chosen |'
  )
  print('|---|---|---|---|---|---|---|---|')
  for shape in SHAPES:
    ms = _median_ms(
      {
        'xla': _jax_fn(conv_lowering.conv2d_xla, shape),
        'patches': _jax_fn(conv_lowering.conv2d_patches, shape),
        'torch': _torch_fn(shape),
      },
      _REPEATS.value,
    )
    size, cin, cout, k, stride = shape
    chosen = conv_lowering.use_patches(size, size, cin, stride, backend='cpu')
    print(
      f'| {size}x{size} | {cin} -> {cout} | {k}x{k}/{stride} | {ms["xla"]:.1f} | '
      f'{ms["patches"]:.1f} | {ms["torch"]:.1f} | {ms["xla"] / ms["patches"]:.2f} | '
      f'{"yes" if chosen else "no"} |',
      flush=True,
    )


# --mode step_shapes


@dataclasses.dataclass(frozen=True)
class ConvShape:
  """One convolution of a model: NHWC input of the whole batch, HWIO kernel."""

  batch: int
  height: int
  width: int
  in_channels: int
  out_channels: int
  kernel: int
  stride: int
  input_gradient: bool  # False for a convolution of the images: the step needs no dx

  def __str__(self) -> str:
    return (
      f'{self.batch}x{self.height}x{self.width}x{self.in_channels} -> '
      f'{self.out_channels}, {self.kernel}x{self.kernel}/{self.stride}'
    )


def model_convs(name: str, width: float, batch: int) -> collections.Counter:
  """The model's convolutions (``layers.Conv`` calls, traced abstractly), counted by
  shape, in the order of their first call."""
  model = models.get_model(name, num_classes=timed_steps.NUM_CLASSES, width=width)
  found: list[ConvShape] = []

  def record(next_fun, args, kwargs, context):
    module = context.module
    if isinstance(module, layers.Conv) and context.method_name == '__call__':
      n, h, w, c = args[0].shape
      found.append(
        ConvShape(
          n,
          h,
          w,
          c,
          module.features,
          module.kernel_size,
          module.strides,
          input_gradient=bool(found),
        )
      )
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(
      lambda x: model.init(jax.random.key(0), x, train=True),
      jax.ShapeDtypeStruct((batch, *timed_steps.IMAGE_SHAPE), jnp.float32),
    )
  return collections.Counter(found)


def _jax_passes(shape: ConvShape, mesh) -> tuple[dict[str, Callable], dict[str, str]]:
  """Blocking calls of the compiled forward, input- and kernel-gradient programs, and the
  path XLA compiled each one's convolutions to."""
  k, stride = shape.kernel, shape.stride

  def conv(x, w):
    return conv_lowering.conv2d(x, w, stride, (k - 1) // 2)

  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(keys[0], (shape.batch, shape.height, shape.width, shape.in_channels))
  w = jax.random.normal(keys[1], (k, k, shape.in_channels, shape.out_channels)) * 0.05
  dy = jax.random.normal(keys[2], jax.eval_shape(conv, x, w).shape)
  split = sharding.batch_sharded(mesh, shape.batch)
  x, dy = jax.device_put(x, split), jax.device_put(dy, split)
  w = jax.device_put(w, sharding.replicated(mesh))
  programs = {
    'fwd': lambda x, w, dy: conv(x, w),
    'dx': lambda x, w, dy: jax.vjp(lambda x: conv(x, w), x)[1](dy)[0],
    'dk': lambda x, w, dy: jax.vjp(lambda w: conv(x, w), w)[1](dy)[0],
  }
  if not shape.input_gradient:
    del programs['dx']
  calls, paths = {}, {}
  for name, program in programs.items():
    compiled = jax.jit(program).lower(x, w, dy).compile()
    paths[name] = compiled_paths(compiled.as_text() or '')
    calls[name] = lambda compiled=compiled: jax.block_until_ready(compiled(x, w, dy))
  return calls, paths


def compiled_paths(text: str) -> str:
  """The paths of the convolutions and matmuls that execute in a compiled program, e.g.
  'ynn', 'eigen' or 'dot (ynn)'; several joined by '+'."""
  instructions, computations = hlo_text.parse_hlo(text)
  fused = hlo_text.fused_computations(instructions)
  paths = [
    hlo_text.conv_path(n, instructions, computations)
    for c, names in computations.items()
    if c not in fused
    for n in names
  ]
  return '+'.join(dict.fromkeys(p for p in paths if p)) or 'none'


def _torch_passes(shape: ConvShape) -> dict[str, Callable]:
  """Blocking calls of ``nn.Conv2d``'s forward and of each gradient alone."""
  import torch

  torch.manual_seed(0)
  conv = torch.nn.Conv2d(
    shape.in_channels,
    shape.out_channels,
    shape.kernel,
    shape.stride,
    padding=(shape.kernel - 1) // 2,
    bias=False,
  )
  x = torch.randn(
    shape.batch, shape.in_channels, shape.height, shape.width, requires_grad=shape.input_gradient
  )
  y = conv(x)
  dy = torch.randn_like(y)
  calls = {
    'fwd': lambda: conv(x),
    'dx': lambda: torch.autograd.grad(y, x, dy, retain_graph=True),
    'dk': lambda: torch.autograd.grad(y, conv.weight, dy, retain_graph=True),
  }
  if not shape.input_gradient:
    del calls['dx']
  return calls


def _devices() -> int:
  devices = jax.device_count() if _DEVICES.value is None else _DEVICES.value
  if not 1 <= devices <= jax.device_count():
    raise app.UsageError(f'--devices {devices}: there are {jax.device_count()} devices')
  if _BATCH.value % devices:
    raise app.UsageError(f'--batch_size {_BATCH.value} does not split over --devices {devices}')
  return devices


def step_shapes() -> None:
  import torch

  devices = _devices()
  torch.set_num_threads(_TORCH_THREADS.value)
  mesh = sharding.make_mesh(jax.devices()[:devices])
  shapes = model_convs(_MODEL.value, _WIDTH.value, _BATCH.value)
  print(
    f'{_MODEL.value}, width {_WIDTH.value}, batch {_BATCH.value}: JAX {jax.__version__} '
    f'on {devices} {jax.default_backend()} device(s), PyTorch {torch.__version__} '
    f'({torch.get_num_threads()} threads); median ms of {_REPEATS.value} interleaved '
    'calls; "-": the step has no input gradient there\n'
  )
  print(
    '| shape (NHWC -> out, kernel/stride) | convs | JAX fwd | JAX dx | JAX dk '
    '| PyTorch fwd | PyTorch dx | PyTorch dk | JAX speed / PyTorch speed '
    '| XLA path (fwd / dx / dk) |'
  )
  print('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|')
  totals = {(side, p): 0.0 for side in ('jax', 'torch') for p in PASSES}
  for shape, count in shapes.items():
    jax_calls, paths = _jax_passes(shape, mesh)
    fns = {('jax', p): f for p, f in jax_calls.items()}
    fns.update({('torch', p): f for p, f in _torch_passes(shape).items()})
    ms = _median_ms(fns, _REPEATS.value)
    for key, t in ms.items():
      totals[key] += count * t
    print(
      _row(str(shape), str(count), ms, ' / '.join(paths.get(p, '-') for p in PASSES)), flush=True
    )
  print(_row('**all convolutions of the step**', str(sum(shapes.values())), totals, ''))


def _row(label: str, count: str, ms: dict, paths: str) -> str:
  cells = [
    f'{ms[(side, p)]:.1f}' if (side, p) in ms else '-' for side in ('jax', 'torch') for p in PASSES
  ]
  jax_total = sum(t for (side, _), t in ms.items() if side == 'jax')
  torch_total = sum(t for (side, _), t in ms.items() if side == 'torch')
  return (
    f'| {label} | {count} | ' + ' | '.join(cells) + f' | {torch_total / jax_total:.2f} | {paths} |'
  )


def main(argv):
  del argv
  if _MODE.value == 'lowerings':
    lowerings()
  else:
    step_shapes()


if __name__ == '__main__':
  launch.run(main)
