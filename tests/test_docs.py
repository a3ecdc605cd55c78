"""Every ```python block of README.md and docs/*.md runs, so that the docs cannot rot.

Each page's blocks run in order in one namespace (a later block may use an earlier one's
names), one test per page. Tracebacks name the page and its line. Shell blocks are not
run; snippets must stay tiny (this whole file takes a few seconds).
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
_PYTHON_BLOCK = re.compile(r'^```python\n(.*?)^```[ \t]*$', re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
  """``(line of the block's first code line, code)`` for each fenced python block."""
  return [
    (text.count('\n', 0, match.start(1)) + 1, match.group(1))
    for match in _PYTHON_BLOCK.finditer(text)
  ]


def _pages_with_snippets() -> list[pathlib.Path]:
  return [page for page in PAGES if python_blocks(page.read_text())]


def test_readme_has_python_snippets():
  """Guards the extraction: a changed fence style must not silently run nothing."""
  assert python_blocks((ROOT / 'README.md').read_text())


@pytest.mark.parametrize(
  'page', _pages_with_snippets(), ids=lambda page: str(page.relative_to(ROOT))
)
def test_python_snippets_run(page):
  namespace = {'__name__': f'snippets of {page.name}'}
  for line, code in python_blocks(page.read_text()):
    # Leading newlines make tracebacks point at the page's own line numbers.
    exec(compile('\n' * (line - 1) + code, str(page.relative_to(ROOT)), 'exec'), namespace)
