"""Training-step throughput: our jitted JAX step versus the PyTorch twin in eager mode.

    python -m benchmarks.bench_train [--models vgg16,resnet18,wrn16_4 --width 1.0
                                       --batch_size 128 --repeats 3]

One training step (forward, backward, optimizer update) on a batch of 32x32x3 images
with 10 classes, for each architecture, in images per second (median over
``--repeats`` timed steps, warm-up and compilation excluded). Both sides use SGD
with momentum 0.9 and weight decay 5e-4 (``padam_jax.sgdm`` and
``torch.optim.SGD``), so the comparison is about the model step.

JAX side: ``padam_jax.training.trainer.Trainer`` itself, training epochs of ``POOL_BATCHES``
steps (or ``--steps_per_call``, if more: one whole compiled call) over a pool of random
uint8 images (gathered, cropped, flipped and normalised on the device, split over all
local devices; on CPU one jitted, donated call per batch) with activations in
``--compute_dtype``; the time per step is the epoch's time divided by its steps
(``benchmarks.timed_steps``). Unless ``XLA_FLAGS``
already sets ``--xla_force_host_platform_device_count``, the host devices are set up as
the launchers do (``experiments.launch.run``: two per CPU core) before JAX starts.

PyTorch side: ``padam_jax.reference.models.get_torch_model`` (same structure) in
``train()`` mode, eager, default number of threads; cross-entropy, backward and
``optimizer.step()`` on a float32 batch that is already normalised. The random
crop and flip are not done there (they cost little either way).

The JAX and PyTorch steps of every model alternate within each repeat, so that
both see the same machine state; the ratio column is JAX/PyTorch throughput of the
median steps, the next that of each side's fastest step (less sensitive to other
jobs on a shared machine). The CPU columns give the process's CPU time (user + system,
all threads) per step, median over the repeats: how much work each side does, apart
from how well it keeps the cores busy. Both frameworks live in the process, so threads
of one that still spin-wait after its call would be charged to the other's; pinning
each side to one core (``taskset``, one device, ``OMP_NUM_THREADS=1``) gives the work
without that doubt.

Memory (``--memory``): each side of each model is built again in a process of its own,
warmed up (compiled), its peak resident set reset (``/proc/self/clear_refs``), then
trained for ``MEMORY_STEPS`` more calls (a JAX call is an epoch of ``POOL_BATCHES``
steps). The table gives the peak resident memory during those calls minus the
process's resident memory just before the model was built (after its imports and, for
JAX, the start of its devices): what training the model holds (parameters, optimizer
state, activations, gradients, the compiled program and what compiling it left
resident, the JAX data pool) beyond the framework itself. Linux only.
"""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import jax
from absl import flags

from benchmarks import timed_steps
from experiments import launch
from padam_jax.training import config as config_lib

_MODELS = flags.DEFINE_list('models', ['vgg16', 'resnet18', 'wrn16_4'], 'Architectures to time.')
_WIDTH = flags.DEFINE_float('width', 1.0, 'Channel-width multiplier (1.0: the exact models).')
_BATCH = flags.DEFINE_integer('batch_size', 128, 'Images per training step.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed steps per model and framework.')
_TORCH = flags.DEFINE_bool('torch', True, 'Also time the PyTorch twins.')
_STEPS_PER_CALL = flags.DEFINE_integer(
  'steps_per_call',
  None,
  'Train steps per compiled call (a lax.scan when > 1); '
  'default: what Trainer picks for the backend (1 on CPU).',
)
_COMPUTE_DTYPE = flags.DEFINE_enum(
  'compute_dtype',
  'float32',
  list(config_lib.COMPUTE_DTYPES),
  'Activation dtype of the JAX step (PyTorch: float32).',
)
_MEMORY = flags.DEFINE_bool(
  'memory',
  False,
  'Also measure the memory of each side\'s training step, each in a '
  'process of its own (see the module docstring).',
)
_MEMORY_OF = flags.DEFINE_enum(
  'memory_of', None, ['jax', 'torch'], 'Internal: this process measures one side of one model.'
)

MEMORY_STEPS = 1  # calls of the step after the peak reset (JAX: epochs of POOL_BATCHES steps)
MEMORY_TIMEOUT_S = 1800  # one child: imports, compilation, two calls (minutes at width 1.0)
_KIB = 1024


def _status_kib(field: str) -> int:
  """A ``/proc/self/status`` field in KiB (VmRSS: resident now; VmHWM: peak resident)."""
  with open('/proc/self/status') as f:
    match = re.search(rf'^{field}:\s+(\d+) kB', f.read(), re.M)
  if match is None:
    raise ValueError(f'/proc/self/status has no {field}')
  return int(match.group(1))


def _build(side: str, name: str) -> Callable[[], None]:
  if side == 'jax':
    return timed_steps.jax_step(
      name, _WIDTH.value, _BATCH.value, _STEPS_PER_CALL.value, _COMPUTE_DTYPE.value
    ).run
  return timed_steps.torch_step(name, _WIDTH.value, _BATCH.value)


def _measure_memory(side: str, name: str) -> None:
  """In the child process: prints the step's memory in MiB (see the module docstring)."""
  if side == 'jax':
    jax.devices()  # the backend and its devices are the framework's, not the step's
  else:
    import torch  # noqa: F401  torch's own import is the framework's, not the step's
  before = _status_kib('VmRSS')
  run = _build(side, name)
  run()  # warm-up: compilation, allocator, caches
  with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # resets VmHWM to the current resident set
  for _ in range(MEMORY_STEPS):
    run()
  print(f'step_memory_mib={(_status_kib("VmHWM") - before) / _KIB:.1f}', flush=True)


def _memory_mib(side: str, name: str) -> float | None:
  """The step memory of one side of one model, measured in a new process."""
  argv = [
    sys.executable,
    '-m',
    'benchmarks.bench_train',
    f'--models={name}',
    f'--width={_WIDTH.value}',
    f'--batch_size={_BATCH.value}',
    f'--compute_dtype={_COMPUTE_DTYPE.value}',
    f'--memory_of={side}',
  ]
  if _STEPS_PER_CALL.value:
    argv.append(f'--steps_per_call={_STEPS_PER_CALL.value}')
  try:
    done = subprocess.run(
      argv,
      capture_output=True,
      text=True,
      check=False,
      env=os.environ.copy(),
      timeout=MEMORY_TIMEOUT_S,
    )
  except subprocess.TimeoutExpired:
    print(f'{name} {side}: memory measurement timed out after {MEMORY_TIMEOUT_S} s', flush=True)
    return None
  found = re.search(r'step_memory_mib=([\d.]+)', done.stdout)
  if done.returncode or not found:
    print(
      f'{name} {side}: memory measurement failed (exit {done.returncode}):\n{done.stderr[-2000:]}',
      flush=True,
    )
    return None
  return float(found.group(1))


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _seconds(fn: Callable[[], None]) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def _wall_and_cpu_seconds(fn: Callable[[], None]) -> tuple[float, float]:
  start, cpu = time.perf_counter(), _cpu_seconds()
  fn()
  return time.perf_counter() - start, _cpu_seconds() - cpu


def main(argv) -> None:
  del argv
  if _MEMORY_OF.value:
    _measure_memory(_MEMORY_OF.value, _MODELS.value[0])
    return
  batch = _BATCH.value
  threads = None
  if _TORCH.value:
    import torch

    threads = torch.get_num_threads()
  print(
    f'JAX {jax.__version__} on {jax.device_count()} {jax.default_backend()} device(s); '
    f'PyTorch threads: {threads}; batch {batch}, width {_WIDTH.value}; JAX: '
    f'{_COMPUTE_DTYPE.value}, {_STEPS_PER_CALL.value or "default"} steps per call',
    flush=True,
  )

  steps: dict[str, dict[str, Callable[[], None]]] = {}
  jax_steps = {}  # name -> train steps per timed JAX call
  for name in _MODELS.value:
    step = timed_steps.jax_step(
      name, _WIDTH.value, batch, _STEPS_PER_CALL.value, _COMPUTE_DTYPE.value
    )
    steps[name], jax_steps[name] = {'jax': step.run}, step.steps
    if _TORCH.value:
      steps[name]['torch'] = _build('torch', name)
    for side, fn in steps[name].items():  # warm-up: compilation, allocator, caches
      print(f'{name} {side}: warm-up {_seconds(fn):.2f} s', flush=True)
      fn()

  times: dict[tuple[str, str], list[float]] = {}
  cpu_times: dict[tuple[str, str], list[float]] = {}
  for r in range(_REPEATS.value):
    for name, sides in steps.items():
      for side, fn in sides.items():
        per_call = jax_steps[name] if side == 'jax' else 1
        seconds, cpu = (t / per_call for t in _wall_and_cpu_seconds(fn))
        times.setdefault((name, side), []).append(seconds)
        cpu_times.setdefault((name, side), []).append(cpu)
        print(f'repeat {r + 1}: {name} {side} {seconds:.3f} s (CPU {cpu:.3f} s)', flush=True)

  memory = {}
  if _MEMORY.value:
    for name in _MODELS.value:
      for side in ('jax', 'torch') if _TORCH.value else ('jax',):
        memory[(name, side)] = mib = _memory_mib(side, name)
        if mib is not None:
          print(f'{name} {side}: step memory {mib:.0f} MiB', flush=True)
  _print_table(_MODELS.value, times, cpu_times, memory, batch)


def _print_table(names, times, cpu_times, memory, batch) -> None:
  """The Markdown table of throughput, CPU time (and memory, when measured) per model.

  ``times`` and ``cpu_times`` map ``(model, side)`` to seconds per step, ``memory`` to
  MiB (``None``: failed); a side without entries prints as ``-``.
  """
  fmt = lambda value, spec: '-' if value is None else format(value, spec)  # noqa: E731

  def median_ms(key):
    return 1e3 * statistics.median(cpu_times[key]) if key in cpu_times else None

  columns = [
    'model',
    'JAX img/s',
    'PyTorch img/s',
    'ratio JAX/PyTorch',
    'ratio of fastest steps',
    'JAX CPU ms/step',
    'PyTorch CPU ms/step',
  ]
  if memory:
    columns += ['JAX step MiB', 'PyTorch step MiB']
  print()
  print('| ' + ' | '.join(columns) + ' |')
  print('|---|' + '---:|' * (len(columns) - 1))
  for name in names:
    jax_times, torch_times = times[(name, 'jax')], times.get((name, 'torch'))
    jax_rate = batch / statistics.median(jax_times)
    torch_rate = torch_times and batch / statistics.median(torch_times)
    cells = [
      name,
      fmt(jax_rate, '.1f'),
      fmt(torch_rate, '.1f'),
      fmt(torch_rate and jax_rate / torch_rate, '.2f'),
      fmt(torch_times and min(torch_times) / min(jax_times), '.2f'),
      fmt(median_ms((name, 'jax')), '.0f'),
      fmt(median_ms((name, 'torch')), '.0f'),
    ]
    if memory:
      cells += [fmt(memory.get((name, 'jax')), '.0f'), fmt(memory.get((name, 'torch')), '.0f')]
    print('| ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
  launch.run(main)
