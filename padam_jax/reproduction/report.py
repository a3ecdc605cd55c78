"""Every figure and table of the reproduction's suites, from runs' ``metrics.jsonl`` alone:
the figures drawn by :mod:`padam_jax.reproduction.figures`, the Markdown tables of
:mod:`padam_jax.reproduction.tables`.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Sequence
from typing import Any

from padam_jax.reproduction import figures, measures, suites, tables


def build(
  workdir: str, suite_names: Sequence[str], output_dir: str, partial: bool = False
) -> dict[str, Any]:
  """Every figure (PNG) and table (Markdown) of the suites; returns ``{name: path or text}``.

  Without matplotlib (the ``train`` extra) the figures are left out with one warning.
  ``partial``: what the sweeps present allow, instead of raising for a missing one: a
  suite without any of its sweeps is left out, a figure draws the curves that exist (and
  names the others as not run), a table or heat map needs every sweep it reads.
  """
  os.makedirs(output_dir, exist_ok=True)
  names = suites.ALL_SUITES if 'all' in suite_names else suite_names
  drawing = importlib.util.find_spec('matplotlib') is not None
  if not drawing:
    warnings.warn('matplotlib is not installed: no figures, only the tables', stacklevel=2)
  built: dict[str, Any] = {}
  for name in names:
    suite = suites.SUITES[name]
    present = [s for s in suite.sweeps if measures.has_sweep(workdir, s)]
    if partial and not present:
      continue
    complete = not partial or len(present) == len(suite.sweeps)
    if suite.panels and drawing:
      built[name] = figures.plot_panels(
        workdir, suite, os.path.join(output_dir, f'{name}.png'), partial
      )
    if suite.heatmap and drawing and (not partial or suite.heatmap in present):
      built[f'{name}_heatmap'] = figures.plot_heatmap(
        workdir, suite.heatmap, os.path.join(output_dir, f'{name}_heatmap.png')
      )
    if suite.table and complete:
      built[f'{name}_table'] = (
        tables.table2_markdown(workdir)
        if suite.table == 'table2'
        else tables.final_table_markdown(workdir, suite)
      )
  suffix = '_table'
  tables.write({k[: -len(suffix)]: v for k, v in built.items() if k.endswith(suffix)}, output_dir)
  return built
