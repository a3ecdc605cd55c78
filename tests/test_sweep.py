"""Sweeps: a vmapped grid equals its single runs; divergence; resume; modes; the grid flag."""

import json
import os
import shutil

import numpy as np
import pytest
from conftest import TINY_FLAGS, assert_tensorboard_matches, read_tensorboard, run_python

from padam_jax.rundir import runlog
from padam_jax.training import loop, sweep

TIMING_KEYS = ('train_seconds',)
# Two members as the tiny run with seeds 3 and 4, two whose infinite learning rate makes
# the parameters, and from the second step the loss, non-finite.
GRID = {'learning_rate': [0.1, float('inf')], 'seed': [3, 4]}
GOOD = ('learning_rate=0.1,seed=3', 'learning_rate=0.1,seed=4')
BAD = ('learning_rate=inf,seed=3', 'learning_rate=inf,seed=4')


def _without_timing(records):
  return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


@pytest.fixture(scope='module')
def vmapped(tmp_path_factory, tiny_config, tiny_dataset):
  """The grid trained for 2 epochs in one program: (workdir, records by member)."""
  workdir = str(tmp_path_factory.mktemp('sweep'))
  results = sweep.run_sweep(
    tiny_config(), GRID, workdir, mode='vmap', dataset=tiny_dataset, tensorboard=True
  )
  return workdir, results


@pytest.mark.e2e
def test_members_equal_their_single_runs(vmapped, tiny_config, tiny_dataset, tmp_path):
  """Member k of the vmapped sweep == the single run of configuration k (same seed).

  Compared after one epoch (3 steps): the traced learning rate and the vmapped
  convolutions round differently (measured up to 4e-5 relative after 3 steps), and the
  tiny network amplifies that to ~1e-3 within a few more.
  """
  workdir, results = vmapped
  for name, seed in zip(GOOD, (3, 4), strict=True):
    single = loop.train_and_evaluate(
      tiny_config(seed=seed, epochs=1), str(tmp_path / name), dataset=tiny_dataset
    )[0]
    ours = results[name]
    assert [r['epoch'] for r in ours] == [1, 2] and [r['step'] for r in ours] == [3, 6]
    assert set(ours[0]) == set(single)
    for key in ('train_loss', 'train_accuracy', 'test_loss', 'test_error'):
      np.testing.assert_allclose(ours[0][key], single[key], rtol=2e-4)
    assert (ours[0]['learning_rate'], ours[0]['partial']) == (
      single['learning_rate'],
      single['partial'],
    )
    with (
      open(os.path.join(workdir, name, runlog.CONFIG_FILE)) as ours_file,
      open(tmp_path / name / runlog.CONFIG_FILE) as single_file,
    ):
      assert json.load(ours_file) == {**json.load(single_file), 'epochs': 2}


@pytest.mark.e2e
def test_diverged_members_are_marked_and_frozen(vmapped):
  workdir, results = vmapped
  for name in BAD:
    first, second = results[name]
    assert first['diverged'] is True and second['diverged'] is True
    assert first['train_loss'] is None and first['test_error'] is None
    assert second['step'] == first['step'] < 3  # frozen at its last finite loss
  for name in GOOD:
    assert not any('diverged' in r for r in results[name])
  listed = sweep.read_sweep(workdir)
  assert [run['name'] for run in listed['runs']] == [*GOOD, *BAD]
  assert listed['mode'] == 'vmap' and listed['grid'] == GRID


@pytest.mark.e2e
def test_each_member_has_its_own_summaries(vmapped):
  """The members that diverged in their first epoch have their config and no curves."""
  workdir, results = vmapped
  for name in GOOD:
    assert_tensorboard_matches(os.path.join(workdir, name), results[name])
  for name in BAD:
    scalars, others = read_tensorboard(os.path.join(workdir, name))
    assert scalars == {} and 'config/text_summary' in others


@pytest.mark.e2e
def test_killed_sweep_resumes_to_the_same_metrics(vmapped, tiny_config, tiny_dataset, tmp_path):
  """All K states live in one checkpoint: lose epoch 2's, rerun, get the same records."""
  workdir, results = vmapped
  killed = str(tmp_path / 'killed')
  shutil.copytree(workdir, killed)
  shutil.rmtree(os.path.join(killed, 'checkpoints', '2'))
  resumed = sweep.run_sweep(
    tiny_config(), GRID, killed, mode='vmap', dataset=tiny_dataset, tensorboard=True
  )
  assert {k: _without_timing(v) for k, v in resumed.items()} == {
    k: _without_timing(v) for k, v in results.items()
  }
  for name in GOOD:
    assert_tensorboard_matches(os.path.join(killed, name), resumed[name])


@pytest.mark.e2e
def test_sequential_mode_runs_single_runs(vmapped, tiny_config, tiny_dataset, tmp_path):
  _, results = vmapped
  sequential = sweep.run_sweep(
    tiny_config(), {'seed': [3, 4]}, str(tmp_path), mode='sequential', dataset=tiny_dataset
  )
  assert os.path.isdir(tmp_path / 'seed=3' / 'checkpoints')  # an ordinary single run
  for name, vmapped_name in zip(('seed=3', 'seed=4'), GOOD, strict=True):
    assert len(sequential[name]) == 2
    np.testing.assert_allclose(
      sequential[name][0]['train_loss'], results[vmapped_name][0]["train_loss"], rtol=2e-4
    )


@pytest.mark.e2e
def test_resume_with_another_grid_is_refused(vmapped, tiny_config, tiny_dataset):
  workdir, _ = vmapped
  with pytest.raises(runlog.ConfigMismatchError, match='another sweep'):
    sweep.run_sweep(tiny_config(), {'seed': [3, 4]}, workdir, mode='vmap', dataset=tiny_dataset)


@pytest.mark.e2e
def test_a_sequential_sweep_may_grow_but_not_change(tiny_config, tmp_path):
  said = []

  def write(mode, seeds):
    grid = {'seed': seeds}
    sweep._write_sweep_file(
      str(tmp_path),
      mode,
      grid,
      sweep.expand(tiny_config(), grid),
      said.append,
    )

  write('sequential', [0, 1, 2])
  write('sequential', [0, 1, 2, 3, 4])  # two more seeds: the first three are kept
  assert said == [f'{tmp_path / sweep.SWEEP_FILE}: 2 runs added to its 3']
  assert [r['name'] for r in sweep.read_sweep(str(tmp_path))['runs']] == [
    f'seed={k}' for k in range(5)
  ]
  for mode, seeds in (('sequential', [1, 2, 3, 4, 5]), ('vmap', [0, 1, 2, 3, 4, 5])):
    with pytest.raises(runlog.ConfigMismatchError, match='may only grow'):
      write(mode, seeds)


def test_parse_grid_and_expand(tiny_config):
  grid = sweep.parse_grid(['lr=0.1,0.01', 'partial=0.25,0.125,0.0625', 'seed=0,1'])
  assert grid == {'learning_rate': [0.1, 0.01], 'partial': [0.25, 0.125, 0.0625], 'seed': [0, 1]}
  members = sweep.expand(tiny_config(), grid)
  assert len(members) == 12 and len({m.name for m in members}) == 12
  assert members[0].name == 'learning_rate=0.1,partial=0.25,seed=0'
  assert members[-1].config.learning_rate == 0.01 and members[-1].config.seed == 1


@pytest.mark.parametrize(
  'specs, message',
  [
    (['lr'], 'NAME=V1'),
    (['depth=1,2'], 'NAME one of'),
    (['seed=0.5'], 'ints'),
    (['lr=0.1', 'lr=0.2'], 'twice'),
    (['lr=0.1,0.1'], 'repeats'),
  ],
)
def test_bad_grid_flags_are_explained(specs, message):
  with pytest.raises(ValueError, match=message):
    sweep.parse_grid(specs)


def test_bad_member_values_are_refused_before_any_work(tiny_config):
  with pytest.raises(ValueError, match='partial'):
    sweep.expand(tiny_config(), {'partial': [0.125, 0.75]})
  with pytest.raises(ValueError, match='mode'):
    sweep.choose_mode('fast', 2)


@pytest.mark.e2e
def test_complete_sweep_is_skipped(vmapped, tiny_config, tiny_dataset):
  workdir, results = vmapped
  said = []
  again = sweep.run_sweep(
    tiny_config(), GRID, workdir, mode='vmap', dataset=tiny_dataset, progress=said.append
  )
  assert said == [f'{workdir}: all 4 runs complete'] and again == results


def test_launcher_refuses_a_flag_the_grid_varies(tmp_path):
  code = run_python(
    '-m',
    'experiments.sweep',
    *TINY_FLAGS,
    '--lr',
    '0.1',
    '--grid',
    'lr=0.1,0.2',
    '--workdir',
    str(tmp_path),
    timeout=120,
  )
  assert code.returncode == 2 and '--lr is fixed by its flag and varied by --grid' in code.stderr
  assert not os.path.exists(tmp_path / 'sweep.json')
