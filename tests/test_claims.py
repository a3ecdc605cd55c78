"""The claims table: intervals over seeds, the verdict rule, and verdicts known by construction."""

import math
import os

import fake_runs
import numpy as np
import pytest
from scipy import stats as scipy_stats

from padam_jax import stats
from padam_jax.reproduction import claims, report, suites

EPOCHS = 12  # the last 2 epochs count as the final accuracy
SEEDS = 4
NOISE = (-0.2, -0.1, 0.1, 0.2)  # per seed, accuracy points

# (sweep, grid values) -> (final accuracy %, noise scale, mean train loss). Chosen so that
# each claim's verdict is known: see EXPECTED.
_RUNS = {
  ('wrn16_4-padam', ()): (90.0, 1, 0.2),
  ('wrn16_4-adam', ()): (90.3, 1, 0.3),  # within 1 point: supported
  ('wrn16_4-amsgrad', ()): (95.0, 1, 0.3),  # 5 points apart: contradicted
  ('wrn16_4-sgdm', ()): (89.5, 40, 0.5),  # +0.5 +- ~10: inconclusive
  ('resnet18-padam-p-lr', (0.125, 0.1)): (90.0, 1, 0.6),
  ('resnet18-adam', ()): (90.0, 1, 0.3),  # padam's loss higher: contradicted
  ('resnet18-padam-p-lr', (0.0625, 0.1)): (91.0, 1, 0.6),  # beats p 1/8: supported
  ('resnet18-padam-p-lr', (0.0625, 0.001)): (80.0, 1, 0.6),
  ('resnet18-padam-p-lr', (0.25, 0.1)): (85.0, 1, 0.6),
  ('resnet18-padam-p-lr', (0.25, 0.001)): (88.0, 1, 0.6),  # interaction +14: supported
  ('resnet18-padam-p-schedule', ()): (89.0, 1, 0.6),  # below fixed p: contradicted
}
_DIVERGED = ('wrn16_4-sgdm', 3)  # this member diverges: excluded, counted

EXPECTED = {
  'padam - adam': stats.SUPPORTED,
  'padam - amsgrad': stats.CONTRADICTED,
  'padam - sgdm': stats.INCONCLUSIVE,
  'p 1/16 lr 0.1 - p 1/8 lr 0.1': stats.SUPPORTED,
  '(p 1/16: lr 0.1 - lr 0.001) - (p 1/4: lr 0.1 - lr 0.001)': stats.SUPPORTED,
  'p schedule - p 1/8 lr 0.1': stats.CONTRADICTED,
}


def _metrics(sweep_name, values, index, epoch):
  key = (sweep_name, tuple(v for k, v in values.items() if k != 'seed'))
  accuracy, noise, loss = _RUNS.get(key, (70.0, 1, 1.0))
  if (sweep_name, index) == _DIVERGED and epoch >= 5:
    return None
  if epoch <= EPOCHS - report.last_epochs(EPOCHS):
    accuracy = 50.0  # only the last epochs count
  accuracy += noise * NOISE[values['seed']]
  return {
    'train_loss': loss + 0.01 * NOISE[values['seed']],
    'test_loss': 1.0,
    'test_error': 1 - accuracy / 100,
  }


@pytest.fixture(scope='module')
def reproduction(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('claims'))
  for spec in suites.sweeps_of(['all']):
    if spec.name != 'resnet18-padam-p-schedule':
      fake_runs.write_sweep(workdir, spec, SEEDS, EPOCHS, _metrics)
  return workdir


@pytest.fixture(scope='module')
def judged(reproduction):
  """Every claim judged once with the p-schedule sweep missing, once with it trained."""
  before = {c: claims.judge(reproduction, c) for c in claims.CLAIMS}
  fake_runs.write_sweep(
    reproduction, suites.SWEEPS['resnet18-padam-p-schedule'], SEEDS, EPOCHS, _metrics
  )
  return before, {c: claims.judge(reproduction, c) for c in claims.CLAIMS}


def test_verdicts_known_by_construction(judged):
  _, after = judged
  for claim, result in after.items():
    if claim.measure == 'final_accuracy':
      assert result.verdict == EXPECTED[claim.contrast], claim.contrast
    elif 'wrn16_4' in claim.claim:  # padam's loss is the lowest of the four
      assert result.verdict == stats.SUPPORTED, claim.contrast
    elif claim.contrast == 'padam - adam':  # resnet18: adam's loss is lower
      assert result.verdict == stats.CONTRADICTED
  within = next(
    r for c, r in after.items() if c.contrast == 'padam - adam' and c.measure == 'final_accuracy'
  )
  assert within.interval.estimate == pytest.approx(-0.3, abs=1e-6)
  assert within.epochs == EPOCHS and within.interval.seeds == (SEEDS, SEEDS)


def test_diverged_runs_excluded_and_counted(judged):
  _, after = judged
  sgdm = next(
    r for c, r in after.items() if c.contrast == 'padam - sgdm' and c.measure == 'final_accuracy'
  )
  assert sgdm.excluded == 1 and sgdm.interval.seeds == (SEEDS, SEEDS - 1)
  assert sgdm.seeds_needed is not None and sgdm.seeds_needed > SEEDS


def test_missing_sweep_is_inconclusive_and_named(judged, reproduction):
  before, _ = judged
  schedule = next(r for c, r in before.items() if c.contrast == 'p schedule - p 1/8 lr 0.1')
  assert schedule.verdict == stats.INCONCLUSIVE and schedule.interval is None
  assert schedule.missing == ('resnet18-padam-p-schedule',)
  table = claims.write(reproduction, os.path.join(reproduction, 'figures'))
  assert len(table.splitlines()) == 2 + len(claims.CLAIMS)
  assert '| contradicted |' in table and '| supported |' in table
  with open(os.path.join(reproduction, 'figures', 'claims.md')) as f:
    assert f.read().startswith(claims.RULE)


def test_contrast_is_welchs_interval():
  a, b = [1.0, 2.0, 4.0, 3.5], [0.5, 0.7, 1.9]
  interval = stats.contrast([a, b], [1, -1])
  want = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
  assert interval.estimate == pytest.approx(np.mean(a) - np.mean(b))
  assert (interval.low, interval.high) == pytest.approx((want.low, want.high))
  one = stats.contrast([[1.0], [float('nan'), 2.0]], [1, -1])
  assert one.estimate == -1.0 and one.low is None and one.seeds == (1, 1)
  with pytest.raises(ValueError, match='holds no value'):
    stats.contrast([[float('nan')], [1.0, 2.0]], [1, -1])


@pytest.mark.parametrize(
  'low, high, kind, want',
  [
    (0.1, 2.0, 'greater', stats.SUPPORTED),
    (-2.0, -0.1, 'greater', stats.CONTRADICTED),
    (-0.1, 2.0, 'greater', stats.INCONCLUSIVE),
    (-2.0, -0.1, 'less', stats.SUPPORTED),
    (0.1, 2.0, 'less', stats.CONTRADICTED),
    (-0.5, 0.9, 'within', stats.SUPPORTED),
    (1.2, 3.0, 'within', stats.CONTRADICTED),
    (0.5, 1.5, 'within', stats.INCONCLUSIVE),
    (None, None, 'greater', stats.INCONCLUSIVE),
  ],
)
def test_verdict_rule(low, high, kind, want):
  interval = stats.Interval(0.0, low, high, (3, 3))
  assert stats.verdict(interval, kind, margin=1.0) == want


def test_seeds_to_decide_is_the_first_number_that_decides():
  groups = [[1.0, 2.0, 3.0], [0.0, 1.5, 0.5]]  # +1.33, too spread for 3 seeds
  assert stats.verdict(stats.contrast(groups, [1, -1]), 'greater') == stats.INCONCLUSIVE
  n = stats.seeds_to_decide(groups, [1, -1], 'greater')
  assert n is not None and n > 3
  means = [np.mean(g) for g in groups]

  def decided(seeds):  # the same means and standard deviations, with `seeds` values each
    scaled = [
      m + (np.array(g) - m) * math.sqrt((seeds - 1) / 2) for g, m in zip(groups, means, strict=True)
    ]
    z = [np.concatenate([s] + [np.full(seeds - 3, m)]) for s, m in zip(scaled, means, strict=True)]
    return stats.verdict(stats.contrast(z, [1, -1]), 'greater') != stats.INCONCLUSIVE

  assert decided(n) and not decided(n - 1)
  assert stats.seeds_to_decide([[1.0, 1.0], [1.0, 1.0]], [1, -1], 'greater') is None


def test_converged_scale_sits_between_the_smoke_and_full_scales():
  smoke, converged, full = (suites.SCALES[k] for k in ('cpu', 'cpu_converged', 'full'))
  assert converged.dataset == smoke.dataset == 'fashion_mnist'
  assert smoke.width <= converged.width < full.width
  assert smoke.epochs < converged.epochs and smoke.train_size < converged.train_size
  assert smoke.test_size < converged.test_size
  fields, grid = suites.sweep_arguments(
    suites.SWEEPS['wrn16_4-padam'], converged, 'reproduction', 3
  )
  assert (fields['epochs'], fields['train_size'], grid) == (
    converged.epochs,
    converged.train_size,
    {'seed': [0, 1, 2]},
  )
