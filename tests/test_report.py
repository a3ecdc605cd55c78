"""The reproduction's suites as data, and the figures and tables built from metrics.jsonl alone."""

import os
import shutil
import sys

import fake_runs
import numpy as np
import pytest

from padam_jax.reproduction import figures, measures, report, suites, tables
from padam_jax.training import config as config_lib
from padam_jax.training import sweep

EPOCHS = 8


def _plausible(diverge=()):
  """Records that fall with the epoch; members at a learning rate in ``diverge`` diverge at
  epoch 3."""

  def metrics(sweep_name, values, index, epoch):
    del sweep_name
    if values.get('learning_rate') in diverge and epoch >= 3:
      return None
    loss = 1.0 / (epoch + index)
    return {'train_loss': loss, 'test_loss': loss, 'test_error': 0.3 - 0.01 * epoch}

  return metrics


@pytest.fixture(scope='module')
def fake_reproduction(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('repro'))
  for spec in suites.sweeps_of(['all']):
    fake_runs.write_sweep(
      workdir, spec, 2, EPOCHS, _plausible((0.1,) if spec.name.endswith('-p-lr') else ())
    )
  return workdir


def test_every_curve_reads_a_sweep_its_suite_trains():
  for suite in suites.SUITES.values():
    for panel in suite.panels:
      for curve in panel.curves:
        assert curve.sweep in suite.sweeps, (suite.name, curve)
        assert curve.sweep in suites.SWEEPS


def test_all_trains_each_sweep_once_and_figure1_reuses_the_grids():
  specs = suites.sweeps_of(['all'])
  assert len(specs) == len({s.name for s in specs}) == 13
  runs = sum(
    len(sweep.expand(config_lib.TrainConfig(**f), g))
    for f, g in (suites.sweep_arguments(s, suites.SCALES['cpu'], 'reproduction', 1) for s in specs)
  )
  assert runs == 23  # 12 of Figure 1, 4 + 6 more of Figures 2 and 3, 1 p schedule
  assert {s.name for s in suites.sweeps_of(['table2'])} == {
    f'wrn16_4-{o}' for o in suites.OPTIMIZERS
  }
  with pytest.raises(ValueError, match='figure9'):
    suites.sweeps_of(['figure9'])
  only = suites.sweeps_of(['table2'], ['wrn16_4-adam'])  # one process per sweep
  assert [s.name for s in only] == ['wrn16_4-adam']
  with pytest.raises(ValueError, match="'vgg16-adam' is not one of the suites"):
    suites.sweeps_of(['table2'], ['vgg16-adam'])


def test_scales_differ_only_in_numbers():
  cpu, full = suites.SCALES['cpu'], suites.SCALES['full']
  spec = suites.SWEEPS['resnet18-padam-p-schedule']
  for scale, preset in ((cpu, 'reproduction'), (full, 'paper')):
    fields, grid = suites.sweep_arguments(spec, scale, preset, seeds=3)
    config = config_lib.resolve(config_lib.TrainConfig(**fields))
    assert (config.dataset, config.width) == (scale.dataset, scale.width)
    assert (config.partial, config.partial_end, config.lr_start) == (0.25, 0.0625, 0.01)
    assert config.lr_schedule == 'warmup' and grid == {'seed': [0, 1, 2]}
  assert (
    config_lib.resolve(
      config_lib.TrainConfig(**suites.sweep_arguments(spec, full, 'paper', 1)[0])
    ).epochs
    == 200
  )


def test_figures_and_tables_from_metrics_alone(fake_reproduction, tmp_path):
  built = report.build(fake_reproduction, ['all'], str(tmp_path))
  for name in ('figure1', 'table2', 'figure2', 'figure3', 'figure3_heatmap', 'p_schedule'):
    assert os.path.getsize(built[name]) > 10_000, name  # a PNG with content
  table2 = built['table2_table']
  assert '| padam |' in table2 and '(88.43)' in table2  # the reproduction's number beside ours
  assert 'epoch 2 (CIFAR-10: 25)' in table2 and 'epoch 8 (CIFAR-10: 100)' in table2
  assert '| mean of epochs 8-8 |' in table2
  assert '+-' in table2  # two seeds: mean +- std
  assert 'p 1/4 -> 1/16' in built['p_schedule_table']
  assert os.path.exists(tmp_path / 'tables.md')


def test_tables_without_matplotlib(fake_reproduction, tmp_path, monkeypatch):
  """As on an install without matplotlib: the tables, no figures, one warning."""
  monkeypatch.setitem(sys.modules, 'matplotlib', None)
  with pytest.warns(UserWarning, match='matplotlib is not installed'):
    built = report.build(fake_reproduction, ['all'], str(tmp_path))
  assert '| padam |' in built['table2_table'] and 'figure1' not in built
  assert not list(tmp_path.glob('*.png')) and os.path.exists(tmp_path / 'tables.md')


def test_diverged_runs_are_marked(fake_reproduction):
  ps, lrs, error, diverged = figures.heatmap_cells(fake_reproduction, 'resnet18-padam-p-lr')
  column = lrs.index(0.1)
  assert np.all(np.isnan(error[:, column])) and np.all(diverged[:, column] == 2)
  assert not np.any(np.isnan(np.delete(error, column, axis=1)))
  runs = measures.curve_runs(
    fake_reproduction,
    suites.Curve('', 'resnet18-padam-p-lr', (('partial', 0.125), ('learning_rate', 0.1))),
  )
  matrix = measures.metric_matrix(runs, 'train_loss')
  assert matrix.shape == (2, EPOCHS) and np.all(np.isnan(matrix[:, 2:]))


def test_missing_sweep_names_the_remedy(tmp_path):
  with pytest.raises(FileNotFoundError, match='run the suite first'):
    measures.curve_runs(str(tmp_path), suites.Curve('x', 'wrn16_4-adam'))


def test_measures_read_their_windows():
  """30 epochs whose accuracy is 100 - epoch (%) and train loss the epoch number."""
  records = [{'epoch': e, 'test_error': e / 100, 'train_loss': float(e)} for e in range(1, 31)]
  want = {
    'final_accuracy': ('mean of epochs 26-30', 100 - 28),
    'median_late_accuracy': ('median of epochs 21-30', 100 - 25.5),
    'mean_train_loss': ('mean over all 30 epochs', 15.5),
    'early_train_loss': ('mean of epochs 1-9 (the first 30%)', 5.0),
    'early_paper_train_loss': ('mean of epochs 1-8 (the first quarter', 4.5),
    'early_accuracy': ('mean of epochs 6-10 (around the quarter', 100 - 8),
    'early_median_accuracy': ('median of epochs 6-10 (around the quarter', 100 - 8),
    'train_loss_each_epoch': ('epoch-by-epoch reading of all 30 epochs', 15.5),
  }
  assert set(want) == set(measures.MEASURES)
  for measure, (words, value) in want.items():
    assert measures.describe_window(measure, 30).startswith(words)
    assert measures.run_value(records, 30, measure) == pytest.approx(value)
    assert np.isnan(measures.run_value(records[:29], 30, measure))  # unfinished
  diverged = [*records[:10], {**records[10], 'diverged': True}, *records[11:]]
  assert np.isnan(measures.run_value(diverged, 30, 'early_train_loss'))
  assert measures.window('final_accuracy', 3) == (3, 3)  # at least one epoch
  assert measures.window('early_accuracy', 8) == (1, 4)  # a centred window, clipped
  by_epoch = measures.run_values_by_epoch(records, 30, 'train_loss_each_epoch')
  assert by_epoch == [float(e) for e in range(1, 31)]


def test_partial_figures_of_what_was_run(tmp_path):
  """Only Table 2's sweeps: Figure 1 draws WRN-16-4 and names the rest as not run."""
  workdir = str(tmp_path / 'runs')
  for spec in suites.sweeps_of(['table2']):
    fake_runs.write_sweep(workdir, spec, 2, EPOCHS, _plausible())
  with pytest.raises(FileNotFoundError, match='run the suite first'):
    report.build(workdir, ['figure1'], str(tmp_path / 'out'))
  built = report.build(workdir, ['all'], str(tmp_path / 'out'), partial=True)
  assert sorted(built) == ['figure1', 'table2', 'table2_table']
  assert os.path.getsize(built['figure1']) > 10_000
  assert measures.recorded_preset(workdir) == 'reproduction'
  assert measures.recorded_preset(str(tmp_path)) is None

  # A grid committed point by point: p = 1/16 and the grid's first cell (p = 1/4, lr 0.1)
  # listed in sweep.json but not run yet.
  grid = suites.SWEEPS['resnet18-padam-p-lr']
  fake_runs.write_sweep(workdir, grid, 2, EPOCHS, _plausible())
  for name in os.listdir(os.path.join(workdir, grid.name)):
    if name.startswith(('partial=0.0625,', 'partial=0.25,learning_rate=0.1,')):
      shutil.rmtree(os.path.join(workdir, grid.name, name))
  eighth = suites.Curve('', grid.name, (('partial', 0.125), ('learning_rate', 0.1)))
  assert measures.configured_epochs(workdir, eighth) == EPOCHS
  built = report.build(workdir, ['figure3'], str(tmp_path / 'grid'), partial=True)
  assert sorted(built) == ['figure3', 'figure3_heatmap']
  table = tables.final_table_markdown(workdir, suites.SUITES['figure3'])
  assert table.count('| not run | not run | not run | 0 |') == 4  # p = 1/16 (3), p = 1/4 lr 0.1
  sixteenth = suites.Curve('', grid.name, (('partial', 0.0625), ('learning_rate', 0.1)))
  with pytest.raises(FileNotFoundError, match='has a record yet'):
    measures.curve_runs(workdir, sixteenth)
  _, _, error, _ = figures.heatmap_cells(workdir, grid.name)
  assert np.isnan(error[2]).all() and np.isnan(error[0, 0])
  assert not np.isnan(error[:2].ravel()[1:]).any()
