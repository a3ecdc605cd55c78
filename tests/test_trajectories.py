"""Our optimizers against PyTorch oracles, float64, hundreds of steps."""

import json
import pathlib

import numpy as np
import pytest
from conftest import run_python

from padam_jax import alias
from padam_jax.crosscheck import trajectory
from padam_jax.reference import twins

FIXTURE = pathlib.Path(__file__).parent / 'fixtures' / 'padam_reference.npz'
TOLERANCE = 1e-10


def _fixture():
  return np.load(FIXTURE)


def _settings():
  return json.loads(str(_fixture()['settings_json']))


def test_import_needs_no_torch():
  """The committed-fixture tests run where torch is not installed (e.g. on Python 3.12)."""
  code = (
    'import sys; from padam_jax.crosscheck import trajectory; '
    'assert "torch" not in sys.modules, "torch imported"'
  )
  result = run_python('-c', code)
  assert result.returncode == 0, result.stderr[-2000:]


def test_fixture_is_current():
  """The committed fixture covers every setting with >= 200 steps."""
  fixture = _fixture()
  assert _settings() == trajectory.PADAM_SETTINGS
  assert trajectory.Problem.from_arrays(fixture).steps >= 200


@pytest.mark.parametrize('name', sorted(trajectory.PADAM_SETTINGS))
def test_padam_matches_committed_reference(name):
  fixture = _fixture()
  problem = trajectory.Problem.from_arrays(fixture)
  reference = fixture[f'trajectory/{name}']
  ours = trajectory.jax_trajectory(problem, trajectory.padam_jax_optimizer(_settings()[name]))
  # The parameters must travel, or agreement would prove nothing.
  assert np.abs(reference[-1] - reference[0]).max() > 0.1
  assert trajectory.max_relative_deviation(ours, reference) <= TOLERANCE


def test_settings_give_distinct_trajectories():
  fixture = _fixture()
  finals = [fixture[f'trajectory/{n}'][-1] for n in trajectory.PADAM_SETTINGS]
  for i in range(len(finals)):
    for j in range(i):
      assert np.abs(finals[i] - finals[j]).max() > 1e-4


def test_deviation_measure_detects_a_wrong_optimizer():
  fixture = _fixture()
  problem = trajectory.Problem.from_arrays(fixture)
  setting = dict(trajectory.PADAM_SETTINGS['default_p1/8'], partial=0.25)
  ours = trajectory.jax_trajectory(problem, trajectory.padam_jax_optimizer(setting))
  assert trajectory.max_relative_deviation(ours, fixture['trajectory/default_p1/8']) > 1e-3


@pytest.mark.parametrize('name', sorted(trajectory.PADAM_SETTINGS))
def test_padam_matches_live_reference(name):
  pytest.importorskip('torch')
  problem = trajectory.make_problem()
  setting = trajectory.PADAM_SETTINGS[name]
  ours = trajectory.jax_trajectory(problem, trajectory.padam_jax_optimizer(setting))
  live = trajectory.torch_trajectory(problem, twins.torch_reference_padam(setting))
  assert trajectory.max_relative_deviation(ours, live) <= TOLERANCE


def test_every_registered_optimizer_has_a_twin_and_every_twin_an_optimizer():
  named = {name: o.twin for name, o in alias.REGISTRY.items()}
  missing = {name: twin for name, twin in named.items() if twin not in twins.TWINS}
  assert not missing, f'registered optimizers whose twin is not in twins.TWINS: {missing}'
  unused = set(twins.TWINS) - set(named.values())
  assert not unused, f'twins no registered optimizer names: {sorted(unused)}'


@pytest.mark.parametrize('name', sorted(alias.REGISTRY))
def test_every_registered_optimizer_matches_its_twin(name):
  pytest.importorskip('torch')
  pytest.importorskip('pytorch_optimizer')
  problem = trajectory.make_problem(steps=50)
  ours, make_torch = trajectory.optimizer_twins(name, 0.05, 5e-3, partial=0.25)
  reference = trajectory.torch_trajectory(problem, make_torch)
  ours_trajectory = trajectory.jax_trajectory(problem, ours)
  assert trajectory.max_relative_deviation(ours_trajectory, reference) <= TOLERANCE


@pytest.mark.parametrize('name', sorted(trajectory.ORACLES))
def test_matches_oracles_written_by_others(name):
  pytest.importorskip('torch')
  pytest.importorskip('pytorch_optimizer')
  ours_fn, torch_fn = trajectory.ORACLES[name]
  problem = trajectory.make_problem()
  ours = trajectory.jax_trajectory(problem, ours_fn())
  reference = trajectory.torch_trajectory(problem, torch_fn)
  assert np.abs(reference[-1] - reference[0]).max() > 0.1
  assert trajectory.max_relative_deviation(ours, reference) <= TOLERANCE


@pytest.mark.parametrize('name', sorted(trajectory.COMPLEX_ORACLES))
def test_complex_parameters_match_oracles(name):
  """Complex parameters: real and imaginary parts each get their own moments."""
  pytest.importorskip('torch')
  pytest.importorskip('pytorch_optimizer')
  ours, reference = trajectory.complex_trajectories(name, trajectory.make_complex_problem())
  assert np.abs(reference[-1] - reference[0]).max() > 0.1
  assert trajectory.max_relative_deviation(ours, reference) <= TOLERANCE
