"""Adds Padam to a copy of optax: the files and lines of the proposed pull request.

Usage: ``python add_to_optax.py ROOT``, where ``ROOT/optax`` is optax's package (a clone of
its repository, or a copy of an installed one). ``_padam.py`` and its tests,
``_padam_test.py``, go to ``optax/contrib/``, and each line below is inserted after its anchor
line; a file absent from ``ROOT`` (the docs, in an installed copy) is skipped, an anchor absent
from a present file is an error.
"""

import pathlib
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent

NEW_FILES = ('_padam.py', '_padam_test.py')  # copied into optax/contrib/

# (file under ROOT, anchor line, lines inserted after it), in the files' own sort orders.
ADDITIONS = [
  (
    'optax/contrib/__init__.py',
    'from optax.contrib._muon import scale_by_muon',
    [
      'from optax.contrib._padam import padam',
      'from optax.contrib._padam import scale_by_padam',
      'from optax.contrib._padam import ScaleByPadamState',
    ],
  ),
  (
    'optax/contrib/_common_test.py',
    "    {'opt_name': 'muon', 'opt_kwargs': {'learning_rate': 1e-2}},",
    ["    {'opt_name': 'padam', 'opt_kwargs': {'learning_rate': 1e-2}},"],
  ),
  (
    'optax/contrib/_sharding_test.py',  # newer than optax 0.2.8
    "    'muon': contrib.muon(1e-2),",
    ["    'padam': contrib.padam(1e-2),"],
  ),
  ('docs/api/contrib.rst', '    MuonState', ['    padam', '    ScaleByPadamState']),
  ('docs/api/contrib.rst', '    scale_by_muon', ['    scale_by_padam']),
]


def add_to_optax(root: pathlib.Path) -> list[str]:
  """Copies ``NEW_FILES`` and inserts ``ADDITIONS`` under ``root``; returns what was done."""
  contrib = root / 'optax' / 'contrib'
  if not contrib.is_dir():
    raise FileNotFoundError(f'{root} holds no optax/contrib')
  done = []
  for name in NEW_FILES:
    shutil.copyfile(HERE / name, contrib / name)
    done.append(f'added optax/contrib/{name}')
  for name, anchor, lines in ADDITIONS:
    path = root / name
    if not path.exists():
      done.append(f'skipped {name} (absent)')
      continue
    text = path.read_text(encoding='utf-8').split('\n')
    if anchor not in text:
      raise ValueError(f'{name}: no line {anchor!r} to insert after')
    at = text.index(anchor) + 1
    path.write_text('\n'.join(text[:at] + lines + text[at:]), encoding='utf-8')
    done.append(f'{name}: {len(lines)} line(s) after {anchor.strip()!r}')
  return done


if __name__ == '__main__':
  if len(sys.argv) != 2:
    sys.exit(__doc__)
  print('\n'.join(add_to_optax(pathlib.Path(sys.argv[1]))))
