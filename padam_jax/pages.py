"""Generated blocks of Markdown pages: the text between a ``<!-- NAME:begin -->`` line and a
``<!-- NAME:end -->`` line, which a command writes and a test holds to its source."""

from __future__ import annotations

import re


def markers(name: str) -> tuple[str, str]:
  """The begin and end lines of the block ``name``."""
  return f'<!-- {name}:begin -->', f'<!-- {name}:end -->'


def _span(text: str, name: str, where: str) -> tuple[int, int]:
  """``(where the begin marker ends, where the newline before the end line is)``;
  ``ValueError`` unless ``text`` holds each line once, whole, begin first."""
  begin, end = markers(name)
  begins, ends = (
    list(re.finditer(rf'^{re.escape(marker)}[ \t\r]*$', text, re.M)) for marker in (begin, end)
  )
  if len(begins) != 1 or len(ends) != 1 or ends[0].start() < begins[0].start():
    raise ValueError(
      f'{where} has no one place for its {name} block: it needs one line {begin} and, below '
      f'it, one line {end} (it has {len(begins)} and {len(ends)})'
    )
  return begins[0].start() + len(begin), ends[0].start() - 1


def check(text: str, name: str, where: str) -> None:
  """``ValueError`` unless ``text`` (the page ``where``) has one place for the block."""
  _span(text, name, where)


def block(text: str, name: str, where: str) -> str:
  """What ``text`` (the page ``where``) holds between the block's lines, without the
  whitespace around it."""
  start, stop = _span(text, name, where)
  return text[start:stop].strip()


def replace(text: str, name: str, new: str, where: str) -> str:
  """``text`` with the block ``name`` holding ``new``, a blank line either side."""
  start, stop = _span(text, name, where)
  body = new.strip('\n')
  return f'{text[:start]}\n\n{body}\n{text[stop:]}'
