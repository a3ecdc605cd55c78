"""Where one training step spends its time, by kind of operation: JAX (XLA:CPU) vs PyTorch eager.

    python -m experiments.profile_step --model wrn16_4 --width 0.25 [--batch_size 128
                                       --steps 8 --top 0 --out docs/cpu_profile.md]

The steps are those of ``experiments.bench_train`` (``experiments.train_steps``).

JAX: ``jax.profiler.trace`` around whole ``Trainer`` epochs; XLA:CPU records one event per
executed HLO instruction (thunk) and device. Within one execution on one device, an
instruction is charged its own time plus any wait before the next one starts; a wait
after an unfused convolution (which returns at once and runs on the thread pool) is
charged to that convolution. All-reduces include waiting for the other device. Instructions are
classified from the optimized HLO: convolutions and the matmuls of ``conv_lowering``'s
patches form are forward, input-gradient or kernel-gradient (a result of a kernel's
size), all-reduces belong to BatchNorm statistics or to the gradients, and other
(fused) instructions go by the name scope of their ops (``bn*``, ``conv*``, ``augment``,
``optimizer``), except that fusions XLA names after a transpose or copy (layout changes,
e.g. activations transposed for a kernel gradient, often with a BatchNorm or ReLU fused
in) are counted apart. Per-device times are averaged over the devices; "host, dispatch, idle"
is the untraced wall time of a step minus the devices' busy span.

PyTorch: ``torch.profiler`` on the same number of steps; each op's self time goes to the
category of its outermost classified caller. oneDNN computes both gradients of a
convolution in one ``convolution_backward``; its time is split between input and kernel
gradient in the ratio that separate calls for each take on the model's convolution shapes.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import math
import re
import statistics
import tempfile
import time

from absl import flags
import jax

from experiments import launch, train_steps

_MODEL = flags.DEFINE_string('model', 'wrn16_4', 'Architecture to profile.')
_WIDTH = flags.DEFINE_float('width', 1.0, 'Channel-width multiplier.')
_BATCH = flags.DEFINE_integer('batch_size', 128, 'Images per training step.')
_STEPS = flags.DEFINE_integer('steps', 8, 'Profiled steps per framework (rounded up to whole '
                              f'Trainer epochs of {train_steps.POOL_BATCHES} steps).')
_TOP = flags.DEFINE_integer('top', 0, 'Also list the N most expensive JAX instructions.')
_TORCH = flags.DEFINE_bool('torch', True, 'Also profile the PyTorch twin.')
_OUT = flags.DEFINE_string('out', None, 'Append the Markdown table to this file.')

CATEGORIES = (
    'conv forward', 'conv input-gradient', 'conv kernel-gradient',
    'conv patches (pad/slice/concat)', 'layout transposes and copies', 'BatchNorm',
    'BatchNorm all-reduce',
    'gradient all-reduce', 'other elementwise (ReLU, add, loss, head, copies)', 'augmentation',
    'optimizer update', 'host, dispatch, idle')

_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%([\w.-]+) = (.+?) ([a-z][\w-]*)\((.*)$')
_COMPUTATION = re.compile(r'^(?:ENTRY )?%([\w.-]+) .*\{$')
_COLLECTIVES = ('all-reduce', 'all-reduce-start', 'all-reduce-done', 'all-gather',
                'reduce-scatter', 'collective-permute', 'all-to-all')


def _numel(shape: str) -> int:
  dims = re.match(r'\w+\[([\d,]*)\]', shape)
  return math.prod(int(d) for d in dims.group(1).split(',') if d) if dims else 0


def parse_hlo(text: str) -> tuple[dict[str, dict], dict[str, list[str]]]:
  """Instructions by name (op, numel, op_name, calls) and instruction names by computation."""
  instructions, computations, current = {}, collections.defaultdict(list), None
  for line in text.splitlines():
    if m := _COMPUTATION.match(line):
      current = m.group(1)
    elif m := _INSTRUCTION.match(line):
      name, shape, op, rest = m.groups()
      op_name = re.search(r'op_name="([^"]*)"', rest)
      calls = re.search(r'calls=%([\w.-]+)', rest)
      instructions[name] = {'op': op, 'numel': _numel(shape),
                            'op_name': op_name.group(1) if op_name else '',
                            'calls': calls.group(1) if calls else None}
      computations[current].append(name)
  return instructions, computations


def _scopes(op_name: str) -> list[str]:
  return [re.sub(r'^.*\(|\).*$', '', part) for part in op_name.split('/')]


def classify(name: str, instructions: dict, computations: dict, kernel_sizes: set[int]) -> str:
  """The category of one HLO instruction (fusions by the ops they contain)."""
  inst = instructions.get(name)
  if inst is None:
    return 'other elementwise (ReLU, add, loss, head, copies)'
  inner = [instructions[n] for n in computations.get(inst['calls'], [])]
  op_name = inst['op_name'] or next((i['op_name'] for i in inner if i['op_name']), '')
  scopes = _scopes(op_name)
  is_bn = any(re.fullmatch(r'(\w+_)?bn\d*', s) for s in scopes)
  if inst['op'] in _COLLECTIVES:
    return 'BatchNorm all-reduce' if is_bn else 'gradient all-reduce'
  if 'augment' in scopes:
    return 'augmentation'
  if 'optimizer' in scopes:
    return 'optimizer update'
  in_conv = any(re.fullmatch(r'(\w+_)?conv\d*', s) for s in scopes)
  ops = {i['op'] for i in [inst] + inner}
  if inst['op'] in ('transpose', 'copy') or re.match(r'(wrapped_)?(transpose|copy)', name):
    return 'layout transposes and copies'
  if 'convolution' in ops or (in_conv and 'dot' in ops):
    if inst['numel'] in kernel_sizes:
      return 'conv kernel-gradient'
    return 'conv input-gradient' if 'transpose(' in op_name else 'conv forward'
  if in_conv:
    return 'conv patches (pad/slice/concat)'
  if is_bn:
    return 'BatchNorm'
  return 'other elementwise (ReLU, add, loss, head, copies)'


def _trace_events(logdir: str, module: str) -> list[dict]:
  path = sorted(glob.glob(f'{logdir}/**/*.trace.json.gz', recursive=True))[-1]
  with gzip.open(path) as f:
    events = json.load(f)['traceEvents']
  return [e for e in events if e.get('ph') == 'X' and e.get('args', {}).get('hlo_module') == module
          and 'hlo_op' in e['args']]


def profile_jax(step: train_steps.JaxStep, steps: int) -> tuple[dict[str, float], list]:
  """Milliseconds per step by category, and (ms per step, instruction, category) rows."""
  compiled = step.lowered().compile()
  text = compiled.as_text()
  module = re.match(r'HloModule (\S+?),', text).group(1)
  instructions, computations = parse_hlo(text)
  kernel_sizes = {leaf.size for leaf in jax.tree.leaves(step.state.params) if leaf.ndim == 4}
  epochs = max(1, -(-steps // train_steps.POOL_BATCHES))
  steps = epochs * train_steps.POOL_BATCHES
  step.run()
  walls = []
  for _ in range(epochs):
    start = time.perf_counter()
    step.run()
    walls.append((time.perf_counter() - start) / train_steps.POOL_BATCHES)
  with tempfile.TemporaryDirectory() as logdir:
    with jax.profiler.trace(logdir, create_perfetto_trace=True):
      for _ in range(epochs):
        step.run()
    events = _trace_events(logdir, module)
  runs = collections.defaultdict(list)
  for e in events:
    runs[(e['args'].get('run_id'), e['args'].get('device_ordinal'))].append(e)
  devices = len({d for _, d in runs})
  per_op: dict[str, float] = collections.defaultdict(float)
  busy = 0.0
  for run in runs.values():
    run.sort(key=lambda e: e['ts'])
    pending = None  # an unfused convolution returns at once and runs on the thread pool
    for e, nxt in zip(run, run[1:] + [None]):
      op = e['args']['hlo_op']
      per_op[op] += e['dur']
      if instructions.get(op, {}).get('op') == 'convolution':
        pending = op
      if nxt:  # a wait before the next instruction: the pending convolution, else this one
        per_op[pending or op] += max(0.0, nxt['ts'] - e['ts'] - e['dur'])
        pending = None if nxt['ts'] - e['ts'] - e['dur'] > 50 else pending
    busy += run[-1]['ts'] + run[-1]['dur'] - run[0]['ts']
  scale = 1e-3 / (steps * devices)  # microseconds summed over steps and devices -> ms/step
  totals = dict.fromkeys(CATEGORIES, 0.0)
  rows = []
  for op, us in per_op.items():
    category = classify(op, instructions, computations, kernel_sizes)
    totals[category] += us * scale
    rows.append((us * scale, op, category))
  totals['host, dispatch, idle'] = max(0.0, statistics.median(walls) * 1e3 - busy * scale)
  return totals, sorted(rows, reverse=True)


_TORCH_RULES = (
    ('conv backward', re.compile(r'ConvolutionBackward|convolution_backward')),
    ('conv forward', re.compile(r'aten::conv2d|aten::convolution$')),
    ('BatchNorm', re.compile(r'batch_norm|BatchNorm')),
    ('optimizer update', re.compile(r'Optimizer|sgd|_foreach|zero_grad')),
)


def _torch_category(event) -> str:
  """The category of the outermost classified op on ``event``'s call stack."""
  found = None
  while event is not None:
    for category, pattern in _TORCH_RULES:
      if pattern.search(event.name):
        found = category
        break
    event = event.cpu_parent
  return found or 'other elementwise (ReLU, add, loss, head, copies)'


def _torch_input_share(name: str, width: float, batch_size: int) -> float:
  """Input-gradient share of the separately timed input and kernel gradients of all convs."""
  import torch  # pylint: disable=import-outside-toplevel
  from padam_jax.reference.models import get_torch_model  # pylint: disable=import-outside-toplevel

  model = get_torch_model(name, num_classes=train_steps.NUM_CLASSES, width=width)
  calls = []
  hooks = [m.register_forward_hook(lambda m, i, o: calls.append((m, i[0], o)))
           for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
  with torch.no_grad():
    model(torch.randn(batch_size, 3, 32, 32))
  for h in hooks:
    h.remove()
  seconds = [0.0, 0.0]
  for conv, x, y in calls:
    for which, mask in enumerate(([True, False, False], [False, True, False])):
      def grad(conv=conv, x=x, y=y, mask=mask):
        torch.ops.aten.convolution_backward(
            torch.ones_like(y), x, conv.weight.detach(), None, conv.stride, conv.padding,
            conv.dilation, False, [0, 0], conv.groups, mask)
      grad()
      times = []
      for _ in range(3):
        start = time.perf_counter()
        grad()
        times.append(time.perf_counter() - start)
      seconds[which] += min(times)
  return seconds[0] / sum(seconds)


def profile_torch(name: str, width: float, batch_size: int, steps: int) -> dict[str, float]:
  """Milliseconds per step by category."""
  import torch  # pylint: disable=import-outside-toplevel

  run = train_steps.torch_step(name, width, batch_size)
  for _ in range(2):
    run()
  walls = []
  for _ in range(steps):
    start = time.perf_counter()
    run()
    walls.append(time.perf_counter() - start)
  with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    for _ in range(steps):
      run()
  totals = dict.fromkeys(CATEGORIES, 0.0)
  backward = 0.0
  for event in prof.events():
    ms = event.self_cpu_time_total * 1e-3 / steps
    category = _torch_category(event)
    if category == 'conv backward':
      backward += ms
    else:
      totals[category] += ms
  share = _torch_input_share(name, width, batch_size)
  totals['conv input-gradient'] = backward * share
  totals['conv kernel-gradient'] = backward * (1 - share)
  busy = sum(totals.values())
  totals['host, dispatch, idle'] = max(0.0, statistics.median(walls) * 1e3 - busy)
  totals['augmentation'] = float('nan')  # the PyTorch step gets a ready batch
  return totals


def table(columns: dict[str, dict[str, float]]) -> str:
  """A Markdown table: ms per step and share of the step for each framework."""
  names = list(columns)
  head = '| category | ' + ' | '.join(f'{n} ms | {n} %' for n in names) + ' |'
  lines = [head, '|---|' + '---:|---:|' * len(names)]
  sums = {n: sum(v for v in columns[n].values() if not math.isnan(v)) for n in names}
  for category in CATEGORIES:
    cells = []
    for n in names:
      ms = columns[n][category]
      cells.append('- | -' if math.isnan(ms) else f'{ms:.1f} | {100 * ms / sums[n]:.0f}')
    lines.append(f'| {category} | ' + ' | '.join(cells) + ' |')
  lines.append('| **step** | ' + ' | '.join(f'**{sums[n]:.1f}** | 100' for n in names) + ' |')
  return '\n'.join(lines)


def main(argv) -> None:
  del argv
  name, width, batch = _MODEL.value, _WIDTH.value, _BATCH.value
  title = (f'{name}, width {width}, batch {batch}: JAX {jax.__version__} on {jax.device_count()} '
           f'{jax.default_backend()} device(s)')
  step = train_steps.jax_step(name, width, batch)
  columns = {}
  columns['JAX'], rows = profile_jax(step, _STEPS.value)
  if _TORCH.value:
    import torch  # pylint: disable=import-outside-toplevel
    title += f', PyTorch {torch.__version__} ({torch.get_num_threads()} threads)'
    columns['PyTorch'] = profile_torch(name, width, batch, _STEPS.value)
  text = f'{title}\n\n{table(columns)}\n'
  print(text)
  for ms, op, category in rows[:_TOP.value]:
    print(f'{ms:8.2f} ms  {op:40s} {category}')
  if _OUT.value:
    with open(_OUT.value, 'a', encoding='utf-8') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  launch.run(main)
