"""A run directory's human-readable files: ``config.json`` and ``metrics.jsonl``.

``metrics.jsonl`` holds one JSON object per finished epoch and is the only
source that plots and tables read. Each line carries ``"crc32"``, the CRC-32 of the
line's record without it (compact JSON, sorted keys), so that a damaged line is told
from an intact one; the file is written anew and renamed on every change, so a kill
leaves the old or the new file, never half a line. The intact records are the longest
run of intact lines holding epochs 1, 2, 3, ... (``read_metrics``); a run resumes only
from a checkpoint all of whose epochs are among them. Files written before the checksum
(no line has one) are read as they are.

In a multi-host run every process reads these files but only the primary one writes
them: the writers here do nothing elsewhere.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Callable
from typing import Any

from padam_jax.distributed import hosts

METRICS_FILE = 'metrics.jsonl'
CONFIG_FILE = 'config.json'
CHECK_KEY = 'crc32'


def _strict(value: Any) -> Any:
  return None if isinstance(value, float) and not math.isfinite(value) else value


def _checksum(record: dict[str, Any]) -> str:
  text = json.dumps(record, sort_keys=True, separators=(',', ':'), allow_nan=False)
  return f'{zlib.crc32(text.encode()):08x}'


def _line(record: dict[str, Any]) -> str:
  """One line of ``metrics.jsonl``: ``record`` (non-finite numbers as null) and its CRC."""
  record = {k: _strict(v) for k, v in record.items()}
  return (
    json.dumps({**record, CHECK_KEY: _checksum(record)}, sort_keys=True, allow_nan=False) + '\n'
  )


def write_atomically(path: str, text: str | bytes) -> None:
  """Replaces ``path`` by ``text`` (or bytes): written beside it, fsynced, then renamed over
  it."""
  tmp = path + '.tmp'
  with open(tmp, 'wb') as f:
    f.write(text.encode('utf-8') if isinstance(text, str) else text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def _parse(line: str, checked: bool) -> dict[str, Any] | None:
  """The record of one line, or None when it is torn or damaged."""
  try:
    record = json.loads(line)
  except ValueError:
    return None
  if not isinstance(record, dict) or not isinstance(record.get('epoch'), int):
    return None
  if checked and record.pop(CHECK_KEY, None) != _checksum(record):
    return None
  return record


def check_metrics(workdir: str) -> tuple[list[dict[str, Any]], str | None]:
  """The intact records of ``workdir/metrics.jsonl`` and what is wrong after them (or None).

  Intact records hold epochs 1, 2, ... in order, one line each; reading stops at the
  first line that is torn, damaged (checksum), unreadable or out of sequence.
  """
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return [], None
  with open(path, 'rb') as f:
    text = f.read().decode('utf-8', errors='replace')
  lines = text.splitlines(keepends=True)
  checked = f'"{CHECK_KEY}"' in text
  records: list[dict[str, Any]] = []
  for number, line in enumerate(lines, 1):
    record = _parse(line, checked) if line.endswith('\n') else None
    if record is None:
      return records, f'line {number} is torn or damaged'
    if record['epoch'] != len(records) + 1:
      return records, (
        f'line {number} holds epoch {record["epoch"]} where epoch {len(records) + 1} belongs'
      )
    records.append(record)
  return records, None


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """The intact records of ``workdir/metrics.jsonl`` ([] if absent; see ``check_metrics``)."""
  return check_metrics(workdir)[0]


def append_metrics(workdir: str, record: dict[str, Any]) -> None:
  """Adds one epoch's record after the intact ones (the file is replaced atomically).

  Non-finite numbers are written as ``null``, so the file stays strict JSON.
  """
  if hosts.is_primary():
    _write_metrics(workdir, [*read_metrics(workdir), record])


def _write_metrics(workdir: str, records: list[dict[str, Any]]) -> None:
  write_atomically(os.path.join(workdir, METRICS_FILE), ''.join(_line(r) for r in records))


def diverged_record(workdir: str) -> dict[str, Any] | None:
  """The first record marked ``"diverged": true``, or None."""
  return next((r for r in read_metrics(workdir) if r.get('diverged')), None)


def keep_epochs_up_to(workdir: str, last_epoch: int) -> None:
  """Keeps the intact records of epochs up to ``last_epoch`` only (the rest is redone)."""
  if hosts.is_primary():
    _write_metrics(workdir, [r for r in read_metrics(workdir) if r['epoch'] <= last_epoch])


def read_json_object(path: str) -> dict[str, Any] | None:
  """The JSON object in ``path``, or None when the file is damaged (not such an object)."""
  try:
    with open(path, 'rb') as f:
      content = json.loads(f.read().decode('utf-8'))
  except ValueError:  # also UnicodeDecodeError
    return None
  return content if isinstance(content, dict) else None


def write_json(path: str, content: dict[str, Any]) -> None:
  """Writes ``content`` to ``path`` (indented, in its order, atomically) from the primary
  process."""
  if hosts.is_primary():
    write_atomically(path, json.dumps(content, indent=2) + '\n')


class ConfigMismatchError(ValueError):
  """A run directory holds a run with another configuration."""


def check_config(
  workdir: str,
  config: dict[str, Any],
  *,
  may_differ: tuple[str, ...] = ('epochs', 'data_dir'),
  hint: str = '',
  upgrade: Callable[[dict[str, Any]], dict[str, Any]] = dict,
  optional: tuple[str, ...] = (),
) -> bool:
  """Whether ``workdir`` holds an intact ``config.json`` (False: absent, or not a JSON
  object with the fields of ``config``); one of other settings raises
  ``ConfigMismatchError`` naming the fields that differ (but ``may_differ``).

  ``upgrade`` first puts the saved fields in today's names (values renamed since);
  ``optional`` fields may be absent from either (recorded only when set), and read as None.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  previous = read_json_object(path) if os.path.exists(path) else None
  unset = dict.fromkeys(optional)
  current = {**unset, **config}
  if previous is None or set({**unset, **previous}) != set(current):
    return False
  previous = upgrade({**unset, **previous})
  differing = sorted(k for k in current if k not in may_differ and previous[k] != current[k])
  if differing:
    changes = ', '.join(f'{k}: {previous[k]!r} -> {current[k]!r}' for k in differing)
    raise ConfigMismatchError(
      f'{path} holds a run with another configuration ({changes}'
      f'{"; " + hint if hint else ""}); use a new --workdir or the same settings'
    )
  return True


def write_or_check_config(
  workdir: str,
  config: dict[str, Any],
  *,
  resuming: bool,
  may_differ: tuple[str, ...] = ('epochs', 'data_dir'),
  hint: str = '',
  report: Callable[[str], None] = print,
  upgrade: Callable[[dict[str, Any]], dict[str, Any]] = dict,
  optional: tuple[str, ...] = (),
) -> None:
  """Saves ``config.json``; when ``resuming``, first checks it against the saved one
  (``check_config``: ``ConfigMismatchError`` for other settings). A damaged file is
  rewritten from ``config``, said in one line to ``report``. The file is replaced
  atomically.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if (
    resuming
    and os.path.exists(path)
    and not check_config(
      workdir, config, may_differ=may_differ, hint=hint, upgrade=upgrade, optional=optional
    )
  ):
    report(f'{path} is damaged; rewrote it from the settings of this command')
  write_json(path, dict(sorted(config.items())))
