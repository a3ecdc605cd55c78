"""Every ```python block of README.md and docs/*.md runs, so that the docs cannot rot, and
every Markdown table of those pages and of the committed results' reports renders.

Each page's blocks run in order in one namespace (a later block may use an earlier one's
names), one test per page. Tracebacks name the page and its line. Shell blocks are not
run; snippets must stay tiny (this whole file takes a few seconds).
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
TABLE_PAGES = [
  ROOT / 'README.md',
  *sorted(ROOT.glob('docs/**/*.md')),
  *sorted(ROOT.glob('results/**/*.md')),
]
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


# GitHub's tables (GFM): a header row, a delimiter row of dashes (one or more a cell), body
# rows; every unescaped pipe separates cells, inside code spans too.
_DELIMITER_ROW = re.compile(r'\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?')


def _cell_count(row: str) -> int:
  """Cells of a table row; an escaped pipe separates nothing."""
  return len(row.replace('\\|', '').strip().strip('|').split('|'))


def misshapen_table_rows(text: str) -> list[str]:
  """``line N: n cells, header has m`` for each table row whose cell count is not its
  header's: a delimiter row that differs makes the whole table plain text, a body row that
  differs loses cells or gains empty ones. Fenced code (``` or ~~~) is skipped."""
  lines, found, in_code = text.splitlines(), [], False
  for i, line in enumerate(lines[:-1]):
    in_code ^= line.lstrip().startswith(('```', '~~~'))
    if in_code or '|' not in line or not _DELIMITER_ROW.fullmatch(lines[i + 1].strip()):
      continue
    header = _cell_count(line)
    for j in range(i + 1, len(lines)):
      if not lines[j].lstrip().startswith('|'):
        break
      if _cell_count(lines[j]) != header:
        found.append(f'line {j + 1}: {_cell_count(lines[j])} cells, header has {header}')
  return found


def test_misshapen_tables_are_found():
  good = '| a | b |\n|-|---:|\n| `x \\| y` | 1 \\| 2 |\n'
  assert misshapen_table_rows(good) == []
  assert misshapen_table_rows('| a | b |\n|---|---|\n| `x | y` | 1 |\n') == [
    'line 3: 3 cells, header has 2'
  ]
  assert misshapen_table_rows('| a | b | c |\n|---|---:|\n| 1 | 2 | 3 |\n') == [
    'line 2: 2 cells, header has 3'
  ]
  assert misshapen_table_rows('```\n| a | b |\n|---|\n```\n') == []


@pytest.mark.parametrize('page', TABLE_PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_tables_render(page):
  assert misshapen_table_rows(page.read_text()) == []
