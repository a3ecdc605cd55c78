"""Reading the optimized HLO text of a compiled JAX program (``compiled.as_text()``).

Shared by ``benchmarks.profile_step`` and ``benchmarks.bench_conv``. Besides the
instructions themselves it tells how XLA:CPU runs a convolution: as a YNNPACK fusion (a
``kCustom`` fusion whose backend config says ``__ynn_fusion``), as an Eigen
``convolution`` instruction (a ConvolutionThunk) where YNNPACK does not take it, or, for
``conv_lowering``'s patches form, as a matmul (a ``dot``, which may itself be a YNNPACK
fusion).
"""

from __future__ import annotations

import collections
import math
import re

_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%([\w.-]+) = (.+?) ([a-z][\w-]*)\((.*)$')
_COMPUTATION = re.compile(r'^(?:ENTRY )?%([\w.-]+) .*\{$')
# Attributes kept for describing a convolution or matmul.
_ATTRIBUTE = re.compile(
  r'\b(dim_labels|window|lhs_contracting_dims|rhs_contracting_dims|'
  r'lhs_batch_dims|rhs_batch_dims)=(\{[^}]*\}|[\w>-]+)'
)


def _numel(shape: str) -> int:
  dims = re.match(r'\w+\[([\d,]*)\]', shape)
  return math.prod(int(d) for d in dims.group(1).split(',') if d) if dims else 0


def parse_hlo(text: str) -> tuple[dict[str, dict], dict[str, list[str]]]:
  """Instructions by name and instruction names by computation.

  Each instruction is a dict: ``op``, ``shape`` (with its layout, as printed), ``numel``,
  ``operands`` (names), ``op_name`` (of its metadata, or ''), ``calls`` (the fused
  computation, or None), ``ynn`` (a YNNPACK fusion) and ``attrs`` (``dim_labels``,
  ``window`` and a dot's dimension numbers, where given).
  """
  instructions: dict[str, dict] = {}
  computations: dict[str, list[str]] = collections.defaultdict(list)
  current = ''  # the computation being read
  for line in text.splitlines():
    if m := _COMPUTATION.match(line):
      current = m.group(1)
    elif m := _INSTRUCTION.match(line):
      name, shape, op, rest = m.groups()
      op_name = re.search(r'op_name="([^"]*)"', rest)
      calls = re.search(r'calls=%([\w.-]+)', rest)
      instructions[name] = {
        'op': op,
        'shape': shape,
        'numel': _numel(shape),
        'operands': re.findall(r'%([\w.-]+)', rest.split(')', 1)[0]),
        'op_name': op_name.group(1) if op_name else '',
        'calls': calls.group(1) if calls else None,
        'ynn': '"__ynn_fusion"' in rest,
        'attrs': dict(_ATTRIBUTE.findall(rest)),
      }
      computations[current].append(name)
  return instructions, computations


def fused_computations(instructions: dict) -> set[str]:
  """Computations called by fusions (their instructions do not execute on their own)."""
  return {i['calls'] for i in instructions.values() if i['op'] == 'fusion' and i['calls']}


def is_layout_change(name: str, instructions: dict) -> bool:
  """A transpose or copy, or a fusion XLA names after one (a layout change with, e.g., a
  BatchNorm or ReLU fused in)."""
  op = instructions[name]['op'] if name in instructions else None
  return op in ('transpose', 'copy') or bool(re.match(r'(wrapped_)?(transpose|copy)', name))


def inner(name: str, instructions: dict, computations: dict) -> list[dict]:
  """The instructions of ``name``'s fused computation (none for an unfused instruction)."""
  return [instructions[n] for n in computations.get(instructions[name]['calls'], [])]


def conv_path(name: str, instructions: dict, computations: dict) -> str | None:
  """How a convolution or matmul instruction runs: 'ynn' (YNNPACK convolution), 'eigen'
  (Eigen convolution), 'dot (ynn)' (matmul in a YNNPACK fusion), 'dot' (other matmul),
  'fused convolution' (a convolution in another kind of fusion); None for anything else."""
  inst = instructions[name]
  if inst['op'] == 'convolution':
    return 'eigen'
  if inst['op'] == 'dot':
    return 'dot'
  if inst['op'] != 'fusion':
    return None
  ops = {i['op'] for i in inner(name, instructions, computations)}
  if 'convolution' in ops:
    return 'ynn' if inst['ynn'] else 'fused convolution'
  if 'dot' in ops:
    return 'dot (ynn)' if inst['ynn'] else 'dot'
  return None


def _core(name: str, instructions: dict, computations: dict) -> dict:
  """The convolution or dot that ``name`` is, or that its fusion computes."""
  inst = instructions[name]
  for i in [inst] + inner(name, instructions, computations):
    if i['op'] in ('convolution', 'dot'):
      return i
  return inst


def signature(name: str, instructions: dict, computations: dict) -> tuple[str, str]:
  """Operand and result shapes with layouts (``f32[..]{..} x f32[..]{..} -> f32[..]{..}``),
  and the dimension labels (a convolution's ``dim_labels`` and window, a dot's contracting
  and batch dimensions) of the convolution or dot that ``name`` computes."""
  core = _core(name, instructions, computations)
  operands = [instructions[o]['shape'] for o in core['operands'] if o in instructions]
  shapes = ' x '.join(operands) + ' -> ' + core['shape']
  attrs = core['attrs']
  if 'dim_labels' in attrs:
    labels = attrs['dim_labels']
    if 'window' in attrs:
      labels += ' ' + attrs['window'].strip('{}')
  else:
    labels = ' '.join(f'{k.replace("_dims", "")}={v.strip("{}")}' for k, v in attrs.items())
  return shapes, labels


def producer(name: str, instructions: dict) -> str:
  """The instruction that computes ``name``'s value, looking through bitcasts."""
  while name in instructions and instructions[name]['op'] == 'bitcast':
    name = instructions[name]['operands'][0]
  return name


def layout_feeders(name: str, instructions: dict) -> list[tuple[int, str]]:
  """(operand index, producer) for each operand of ``name`` that is a layout change."""
  found = []
  for index, operand in enumerate(instructions[name]['operands']):
    source = producer(operand, instructions)
    if is_layout_change(source, instructions):
      found.append((index, source))
  return found
