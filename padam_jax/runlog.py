"""A run directory's human-readable files: ``config.json`` and ``metrics.jsonl``.

``metrics.jsonl`` holds one JSON object per finished epoch and is the only
source that plots and tables read. In a multi-host run every process reads these
files but only the primary one writes them: the writers here do nothing elsewhere.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Optional

from padam_jax import hosts

METRICS_FILE = 'metrics.jsonl'
CONFIG_FILE = 'config.json'


def _strict(value: Any) -> Any:
  return None if isinstance(value, float) and not math.isfinite(value) else value


def append_metrics(workdir: str, record: dict[str, Any]) -> None:
  """Appends one epoch's record (flushed and fsynced: survives a kill).

  Non-finite numbers are written as ``null``, so the file stays strict JSON.
  """
  if not hosts.is_primary():
    return
  record = {k: _strict(v) for k, v in record.items()}
  with open(os.path.join(workdir, METRICS_FILE), 'a', encoding='utf-8') as f:
    f.write(json.dumps(record, sort_keys=True, allow_nan=False) + '\n')
    f.flush()
    os.fsync(f.fileno())


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """All records of ``workdir/metrics.jsonl`` ([] if absent); skips a torn last line."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  records = []
  with open(path, encoding='utf-8') as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        break  # a write cut short by a kill: the epoch is redone on resume
  return records


def diverged_epoch(workdir: str) -> Optional[int]:
  """The first epoch whose record is marked ``"diverged": true``, or None."""
  return next((r['epoch'] for r in read_metrics(workdir) if r.get('diverged')), None)


def keep_epochs_up_to(workdir: str, last_epoch: int) -> None:
  """Drops records of epochs after ``last_epoch`` (they are redone on resume)."""
  if not hosts.is_primary():
    return
  records = [r for r in read_metrics(workdir) if r['epoch'] <= last_epoch]
  path = os.path.join(workdir, METRICS_FILE)
  tmp = path + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.writelines(json.dumps(r, sort_keys=True) + '\n' for r in records)
  os.replace(tmp, path)


class ConfigMismatchError(ValueError):
  """A run directory holds a run with another configuration."""


def write_or_check_config(workdir: str, config: dict[str, Any], *, resuming: bool,
                          may_differ: tuple[str, ...] = ('epochs', 'data_dir'),
                          hint: str = '') -> None:
  """Saves ``config.json``; when ``resuming``, first checks it equals the saved one.

  Raises ``ConfigMismatchError`` naming the fields that differ (but ``may_differ``).
  The file is replaced atomically, so a kill never leaves it torn.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if resuming and os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      previous = json.load(f)
    differing = sorted(k for k in set(previous) | set(config)
                       if k not in may_differ and previous.get(k) != config.get(k))
    if differing:
      changes = ', '.join(f'{k}: {previous.get(k)!r} -> {config.get(k)!r}'
                          for k in differing)
      raise ConfigMismatchError(
          f'{workdir} holds a run with another configuration ({changes}'
          f'{"; " + hint if hint else ""}); use a new --workdir or the same settings')
  if not hosts.is_primary():
    return
  tmp = path + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    json.dump(config, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
