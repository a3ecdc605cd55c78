"""Every ``python -m`` command of README.md and docs/*.md that names a module of this
repository still names one, and every flag it gives is one that module defines.

What ``--help`` would check, for all modules in one child process (a process each would
cost a jax import each): the module is imported with the project's absl flags cleared
before it, as in a fresh process, and the flags it then defines are compared with the
command's. Commands are read from shell blocks (continuation lines joined) and from
inline code (which may wrap across lines).
"""

import json
import re

from conftest import ROOT, run_python

PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
PACKAGES = ('experiments', 'benchmarks')  # the folders whose modules are commands
_FENCE = re.compile(r'^[ \t]*```[a-z]*\n(.*?)^[ \t]*```[ \t]*$', re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r'`([^`]+)`')
_COMMAND = re.compile(rf'python3? -m ((?:{"|".join(PACKAGES)})\.\w+)(.*)')
_END = re.compile(r'\s(?:&&|\||;|#|>)\s|\s*$')

# Imports each module (argv[2:]) after clearing the flags and the modules of the packages
# (argv[1]) that an earlier one brought in; prints {module: its flags, or None where it is
# no absl program (no main)} as JSON.
_CHILD = """
import importlib, json, sys
from absl import app, flags
FLAGS, baseline, found = flags.FLAGS, set(flags.FLAGS), {}
for name in sys.argv[2:]:
  for flag in set(FLAGS) - baseline:
    delattr(FLAGS, flag)
  for module in [m for m in sys.modules if m.split('.')[0] in sys.argv[1].split(',')]:
    del sys.modules[module]
  module = importlib.import_module(name)
  found[name] = sorted(FLAGS) if hasattr(module, 'main') else None
print(json.dumps(found))
"""


def commands(text: str) -> list[tuple[str, tuple[str, ...]]]:
  """``(module, flag names)`` of each ``python -m <ours>`` command in a page."""
  pieces = [block.replace('\\\n', ' ') for block in _FENCE.findall(text)]
  prose = _FENCE.sub('', text)
  pieces += [' '.join(span.split()) for span in _INLINE.findall(prose)]
  found = []
  for piece in pieces:
    for line in piece.splitlines():
      for match in _COMMAND.finditer(line):
        end = _END.search(match.group(2))
        assert end is not None, line
        arguments = match.group(2)[: end.start()]
        flags = [t[2:].split('=')[0] for t in arguments.split() if t.startswith('--')]
        found.append((match.group(1), tuple(flags)))
  return found


def test_commands_are_found():
  """Guards the extraction: the README's demo command is read with its flags."""
  readme = commands((ROOT / 'README.md').read_text())
  assert ('experiments.train', ('dataset', 'model', 'width', 'epochs', 'workdir')) in readme


def test_every_python_m_command_names_a_module_and_its_flags():
  wanted = {(page.name, *command) for page in PAGES for command in commands(page.read_text())}
  modules = sorted({module for _, module, _ in wanted})
  child = run_python('-c', _CHILD, ','.join(PACKAGES), *modules)
  assert child.returncode == 0, child.stderr[-3000:]
  defined = json.loads(child.stdout.splitlines()[-1])
  unknown = sorted(
    f'{page}: python -m {module} --{flag}'
    for page, module, flags in wanted
    if defined[module] is not None
    for flag in flags
    if flag not in defined[module]
    and not (flag.startswith('no') and flag[2:] in defined[module])  # --noX of a bool X
  )
  assert not unknown, unknown
