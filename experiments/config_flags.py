"""The command line of a run's configuration: absl flags derived from ``TrainConfig``.

Each field becomes one flag, named by its short name (``--lr``) or its own, typed by
the field (``Optional[float]``: a float flag), an enum where the field has choices, with
the field's help text. ``define_flags()`` defines them all (``experiments.train``,
``experiments.sweep``); ``define_flags(fields, ...)`` a chosen few, with the program's own
defaults (``experiments.reproduce``, ``experiments.crosscheck``).

    python -m experiments.config_flags --markdown

prints the table of the flags (docs/training.md holds it; a test checks it is current).
"""

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from absl import flags

from padam_jax.training import config as config_lib

# field -> its flag, for every field whose flag this program defined.
_DEFINED: dict[str, flags.FlagHolder] = {}
_DEFINE: dict[type, Callable[..., Any]] = {
  bool: flags.DEFINE_bool,
  int: flags.DEFINE_integer,
  float: flags.DEFINE_float,
  str: flags.DEFINE_string,
}


def flag_name(field: str) -> str:
  """The flag of a ``TrainConfig`` field, without dashes (``lr`` for ``learning_rate``)."""
  return config_lib.short_name(field)


def flag_help(field: str, default: Any = None, unset: str | None = None) -> str:
  """The field's help text; with a ``None`` default, also what ``None`` stands for
  (``unset``, else the field's)."""
  metadata = config_lib.FIELDS[field].metadata
  unset = unset or metadata['unset']
  if default is None and unset:
    return f'{metadata["help"].rstrip(".")} (default: {unset}).'
  return metadata['help']


def define_flags(
  fields: Sequence[str] | None = None,
  *,
  defaults: Mapping[str, Any] | None = None,
  unset: Mapping[str, str] | None = None,
  notes: Mapping[str, str] | None = None,
  flag_values: flags.FlagValues = flags.FLAGS,
) -> None:
  """Defines the flags of ``fields`` (default: every field of ``TrainConfig``).

  A program's own meaning of a field, where it differs: ``defaults``, its default
  (``None`` allowed); ``unset``, what ``None`` stands for; ``notes``, a sentence added to
  the help.
  """
  defaults, unset, notes = defaults or {}, unset or {}, notes or {}
  for field in fields or config_lib.FIELDS:
    default = defaults.get(field, config_lib.FIELDS[field].default)
    text = ' '.join(filter(None, [flag_help(field, default, unset.get(field)), notes.get(field)]))
    choices = config_lib.choices(field)
    if choices:
      holder = flags.DEFINE_enum(
        flag_name(field), default, list(choices), text, flag_values=flag_values
      )
    else:
      holder = _DEFINE[config_lib.field_type(field)](
        flag_name(field), default, text, flag_values=flag_values
      )
    _DEFINED[field] = holder


def field_values() -> dict[str, Any]:
  """``{field: value}`` of every configuration flag this program defined."""
  return {field: holder.value for field, holder in _DEFINED.items()}


def config_from_flags() -> config_lib.TrainConfig:
  """The (unresolved) run configuration the flags describe (defaults for the others)."""
  return config_lib.TrainConfig(**field_values())


def explicit_flags() -> set[str]:
  """Names of the configuration flags given on the command line."""
  return {flag_name(field) for field, holder in _DEFINED.items() if holder.present}


def describe(error: config_lib.ConfigError) -> str:
  """The error in the command line's words: ``--lr must ...`` for ``learning_rate``."""
  return f'--{flag_name(error.field)} {error.problem}'


def _cell(value: Any) -> str:
  return '' if value is None else f'`{value}`'


def markdown_table() -> str:
  """The flags of every field as a Markdown table (docs/training.md holds it)."""
  lines = ['| flag | values | default | `--grid` | meaning |', '|---|---|---|---|---|']
  for field, f in config_lib.FIELDS.items():
    metadata = f.metadata
    choices = config_lib.choices(field)
    values = (
      ', '.join(f'`{c}`' for c in choices) if choices else config_lib.field_type(field).__name__
    )
    default = (metadata['unset'] or 'unset') if f.default is None else _cell(f.default)
    grid = 'yes' if field in config_lib.GRID_AXES else ''
    text = metadata['help'].replace('|', '\\|')
    lines.append(f'| `--{flag_name(field)}` | {values} | {default} | {grid} | {text} |')
  return '\n'.join(lines) + '\n'


if __name__ == '__main__':
  if sys.argv[1:] != ['--markdown']:
    sys.exit('usage: python -m experiments.config_flags --markdown')
  sys.stdout.write(markdown_table())
