"""Where one training step spends its time, by kind of operation: JAX (XLA:CPU) vs PyTorch eager.

    python -m benchmarks.profile_step --model wrn16_4 --width 0.25 [--batch_size 128
                                       --steps 8 --top 0 --noconvs --out docs/cpu_profile.md]

The steps are those of ``benchmarks.bench_train`` (``benchmarks.timed_steps``).

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

Then, unless ``--noconvs``, every convolution of the JAX step, one row per HLO
instruction: its layer and pass, how XLA runs it (``hlo_text.conv_path``: a YNNPACK
fusion, an Eigen convolution, or ``conv_lowering``'s patches matmul), its operand and
result shapes with layouts and its ``dim_labels``, the transposes and copies that produce
its operands, and the times of both.

PyTorch: ``torch.profiler`` on the same number of steps; each op's self time goes to the
category of its outermost classified caller. oneDNN computes both gradients of a
convolution in one ``convolution_backward``; its time is split between input and kernel
gradient in the ratio that separate calls for each take on the model's convolution shapes.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import gzip
import json
import math
import re
import statistics
import tempfile
import time

import jax
from absl import flags

from benchmarks import hlo_text, timed_steps
from experiments import launch

_MODEL = flags.DEFINE_string('model', 'wrn16_4', 'Architecture to profile.')
_WIDTH = flags.DEFINE_float('width', 1.0, 'Channel-width multiplier.')
_BATCH = flags.DEFINE_integer('batch_size', 128, 'Images per training step.')
_STEPS = flags.DEFINE_integer(
  'steps',
  8,
  'Profiled steps per framework (rounded up to whole '
  f'Trainer epochs of {timed_steps.POOL_BATCHES} steps).',
)
_TOP = flags.DEFINE_integer('top', 0, 'Also list the N most expensive JAX instructions.')
_TORCH = flags.DEFINE_bool('torch', True, 'Also profile the PyTorch twin.')
_CONVS = flags.DEFINE_bool(
  'convs',
  True,
  'Also list every convolution of the JAX step: its pass, how XLA runs it '
  '(YNNPACK, Eigen or the patches matmul), shapes, layouts, the transposes and copies '
  'feeding it, and its time.',
)
_OUT = flags.DEFINE_string('out', None, 'Append the Markdown table to this file.')

CATEGORIES = (
  'conv forward',
  'conv input-gradient',
  'conv kernel-gradient',
  'conv patches (pad/slice/concat)',
  'layout transposes and copies',
  'BatchNorm',
  'BatchNorm all-reduce',
  'gradient all-reduce',
  'other elementwise (ReLU, add, loss, head, copies)',
  'augmentation',
  'optimizer update',
  'host, dispatch, idle',
)

_COLLECTIVES = (
  'all-reduce',
  'all-reduce-start',
  'all-reduce-done',
  'all-gather',
  'reduce-scatter',
  'collective-permute',
  'all-to-all',
)


def _scopes(op_name: str) -> list[str]:
  return [re.sub(r'^.*\(|\).*$', '', part) for part in op_name.split('/')]


def _op_name(name: str, instructions: dict, computations: dict) -> str:
  """The op_name of an instruction, else the first one inside its fusion."""
  inner = hlo_text.inner(name, instructions, computations)
  return instructions[name]['op_name'] or next((i['op_name'] for i in inner if i['op_name']), '')


def classify(name: str, instructions: dict, computations: dict, kernel_sizes: set[int]) -> str:
  """The category of one HLO instruction (fusions by the ops they contain)."""
  inst = instructions.get(name)
  if inst is None:
    return 'other elementwise (ReLU, add, loss, head, copies)'
  inner = hlo_text.inner(name, instructions, computations)
  op_name = _op_name(name, instructions, computations)
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
  if hlo_text.is_layout_change(name, instructions):
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
  return [
    e
    for e in events
    if e.get('ph') == 'X'
    and e.get('args', {}).get('hlo_module') == module
    and 'hlo_op' in e['args']
  ]


@dataclasses.dataclass
class JaxProfile:
  """The profile of the JAX step and the optimized HLO it was attributed with."""

  totals: dict[str, float]  # ms per step by category
  rows: list[tuple[float, str, str]]  # (ms per step, instruction, category), largest first
  instructions: dict[str, dict]  # hlo_text.parse_hlo
  computations: dict[str, list[str]]
  kernel_sizes: set[int]


def profile_jax(step: timed_steps.JaxStep, steps: int) -> JaxProfile:
  """Milliseconds per step by category and by HLO instruction (averaged over devices)."""
  compiled = step.lowered().compile()
  text = compiled.as_text()
  header = re.match(r'HloModule (\S+?),', text)
  if header is None:
    raise ValueError('the compiled text does not start with its HloModule line')
  module = header.group(1)
  instructions, computations = hlo_text.parse_hlo(text)
  kernel_sizes = {leaf.size for leaf in jax.tree.leaves(step.state.params) if leaf.ndim == 4}
  epochs = max(1, -(-steps // timed_steps.POOL_BATCHES))
  steps = epochs * timed_steps.POOL_BATCHES
  step.run()
  walls = []
  for _ in range(epochs):
    start = time.perf_counter()
    step.run()
    walls.append((time.perf_counter() - start) / timed_steps.POOL_BATCHES)
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
    for e, nxt in zip(run, run[1:] + [None], strict=True):
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
  return JaxProfile(totals, sorted(rows, reverse=True), instructions, computations, kernel_sizes)


CONV_PASSES = ('conv forward', 'conv input-gradient', 'conv kernel-gradient')


@dataclasses.dataclass
class ConvRow:
  """One convolution (or patches matmul) of the compiled step."""

  layer: str  # the model's scope, e.g. 'stage1_block1/conv1'; '?' if not found
  conv_pass: str  # one of CONV_PASSES
  path: str | None  # hlo_text.conv_path: 'ynn', 'eigen', 'dot (ynn)', 'dot', ...
  instruction: str
  shapes: str  # operand and result shapes with layouts
  labels: str  # dim_labels and window, or a dot's dimensions
  feeders: list[tuple[int, str, float]]  # (operand index, the transpose or copy making it, ms)
  ms: float

  @property
  def feeders_ms(self) -> float:
    return sum(ms for _, _, ms in self.feeders)


def _layer(op_name: str) -> str:
  """'stage1_block1/conv1' from '.../transpose(jvp(Model))/stage1_block1/conv1/dot_general'."""
  parts = [p for p in op_name.split('/') if '(' not in p]
  convs = [i for i, p in enumerate(parts) if re.fullmatch(r'(\w+_)?conv\d*', p)]
  return '/'.join(parts[: convs[-1] + 1]) if convs else ''


def _sources(name: str, instructions: dict) -> set[str]:
  """The producers of ``name``'s operands, looking through layout changes and bitcasts."""
  found: set[str] = set()
  for operand in instructions[name]['operands']:
    source = hlo_text.producer(operand, instructions)
    if hlo_text.is_layout_change(source, instructions):
      found.update(hlo_text.producer(o, instructions) for o in instructions[source]['operands'])
    else:
      found.add(source)
  return found


def conv_rows(profile: JaxProfile) -> list[ConvRow]:
  """Every executed convolution and patches matmul of the step, by layer and pass.

  XLA gives kernel-gradient convolutions it rewrites no metadata; each is named after the
  input-gradient convolution that shares its output-gradient operand (else '?').
  """
  ins, comps = profile.instructions, profile.computations
  ms = {op: t for t, op, _ in profile.rows}
  fused = hlo_text.fused_computations(ins)
  passes = {}
  for computation, names in comps.items():
    if computation in fused:
      continue
    for name in names:
      category = classify(name, ins, comps, profile.kernel_sizes)
      if category in CONV_PASSES and hlo_text.conv_path(name, ins, comps):
        passes[name] = category
  layer = {n: _layer(_op_name(n, ins, comps)) for n in passes}
  sources = {n: _sources(n, ins) for n in passes}
  named_dx = [n for n in passes if layer[n] and passes[n] == 'conv input-gradient']
  for n in passes:
    if not layer[n]:
      matches = {layer[m] for m in named_dx if sources[n] & sources[m]}
      layer[n] = matches.pop() if len(matches) == 1 else '?'
  order: dict[str, int] = {}
  for n in passes:  # layers in the order of their forward pass
    if passes[n] == 'conv forward':
      order.setdefault(layer[n], len(order))
  rows = []
  for n, conv_pass in passes.items():
    feeders = [(i, f, ms.get(f, 0.0)) for i, f in hlo_text.layout_feeders(n, ins)]
    shapes, labels = hlo_text.signature(n, ins, comps)
    rows.append(
      ConvRow(
        layer[n],
        conv_pass,
        hlo_text.conv_path(n, ins, comps),
        n,
        shapes,
        labels,
        feeders,
        ms.get(n, 0.0),
      )
    )
  return sorted(
    rows,
    key=lambda r: (order.get(r.layer, len(order)), CONV_PASSES.index(r.conv_pass), r.instruction),
  )


def conv_table(rows: list[ConvRow]) -> str:
  """A Markdown table of ``conv_rows``, and the time per path."""
  lines = [
    '| layer | pass | path | instruction | operands -> result (layouts) | dim_labels '
    '| transposes/copies in (operand: producer) | their ms | ms |',
    '|---|---|---|---|---|---|---|---:|---:|',
  ]
  for r in rows:
    feeders = ', '.join(f'{i}: {f}' for i, f, _ in r.feeders) or '-'
    lines.append(
      f'| {r.layer} | {r.conv_pass.removeprefix("conv ")} | {r.path} | '
      f'{r.instruction} | {r.shapes} | {r.labels} | {feeders} | '
      f'{r.feeders_ms:.2f} | {r.ms:.2f} |'
    )
  copies = {f: ms for r in rows for _, f, ms in r.feeders}  # a copy may feed several
  copies_ms = sum(copies.values())
  lines.append(
    f'| **all** | | | {len(rows)} instructions | | | {len(copies)} distinct | '
    f'**{copies_ms:.1f}** | '
    f'**{sum(r.ms for r in rows):.1f}** |'
  )
  by_path: dict[str | None, list[float]] = collections.defaultdict(lambda: [0, 0.0])
  for r in rows:
    by_path[r.path][0] += 1
    by_path[r.path][1] += r.ms
  summary = '; '.join(
    f'{path}: {n} instructions, {t:.1f} ms'
    for path, (n, t) in sorted(by_path.items(), key=lambda kv: -kv[1][1])
  )
  return '\n'.join(lines) + f'\n\nBy path: {summary}.'


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
  import torch

  from padam_jax.reference.models import get_torch_model

  model = get_torch_model(name, num_classes=timed_steps.NUM_CLASSES, width=width)
  calls = []
  hooks = [
    m.register_forward_hook(lambda m, i, o: calls.append((m, i[0], o)))
    for m in model.modules()
    if isinstance(m, torch.nn.Conv2d)
  ]
  with torch.no_grad():
    model(torch.randn(batch_size, 3, 32, 32))
  for h in hooks:
    h.remove()
  seconds = [0.0, 0.0]
  for conv, x, y in calls:
    for which, mask in enumerate(([True, False, False], [False, True, False])):

      def grad(conv=conv, x=x, y=y, mask=mask):
        torch.ops.aten.convolution_backward(
          torch.ones_like(y),
          x,
          conv.weight.detach(),
          None,
          conv.stride,
          conv.padding,
          conv.dilation,
          False,
          [0, 0],
          conv.groups,
          mask,
        )

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
  import torch

  run = timed_steps.torch_step(name, width, batch_size)
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
  title = (
    f'{name}, width {width}, batch {batch}: JAX {jax.__version__} on {jax.device_count()} '
    f'{jax.default_backend()} device(s)'
  )
  step = timed_steps.jax_step(name, width, batch)
  columns = {}
  jax_profile = profile_jax(step, _STEPS.value)
  columns['JAX'] = jax_profile.totals
  if _TORCH.value:
    import torch

    title += f', PyTorch {torch.__version__} ({torch.get_num_threads()} threads)'
    columns['PyTorch'] = profile_torch(name, width, batch, _STEPS.value)
  text = f'{title}\n\n{table(columns)}\n'
  if _CONVS.value:
    text += (
      f'\nEvery convolution of the JAX step (shapes per device; ms per step and device):'
      f'\n\n{conv_table(conv_rows(jax_profile))}\n'
    )
  print(text)
  for ms, op, category in jax_profile.rows[: _TOP.value]:
    print(f'{ms:8.2f} ms  {op:40s} {category}')
  if _OUT.value:
    with open(_OUT.value, 'a', encoding='utf-8') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  launch.run(main)
