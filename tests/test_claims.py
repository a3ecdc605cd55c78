"""The claims table: intervals over seeds, the verdict rule, and verdicts known by construction."""

import dataclasses
import math
import os
import shutil
import sys

import fake_runs
import numpy as np
import pytest
from scipy import stats as scipy_stats

from padam_jax import stats
from padam_jax.reproduction import claims, claims_table, judging, measures, suites, summary

EPOCHS = 12  # mean of epochs 11-12, median of 9-12, early losses of 1-4 (30%) and 1-3
SEEDS = 4
NOISE = (-0.2, -0.1, 0.1, 0.2)  # per seed, accuracy points

# (sweep, grid values) -> (final accuracy %, noise scale, train loss, train loss of the first
# 4 epochs). Chosen so that each claim's verdict is known: see DESIGNED.
_RUNS = {
  ('wrn16_4-padam', ()): (90.0, 1, 0.2, None),
  ('wrn16_4-adam', ()): (90.3, 1, 0.3, None),  # within 1 point: supported
  ('wrn16_4-amsgrad', ()): (95.0, 1, 0.3, None),  # 5 points above, but see _COLLAPSE
  ('wrn16_4-sgdm', ()): (89.5, 40, 0.5, None),  # +0.5 +- ~10: inconclusive
  ('vgg16-padam-p', (0.125,)): (88.0, 1, 0.5, 0.3),
  ('vgg16-padam-p', (0.0625,)): (91.0, 1, 0.5, None),  # beats p 1/8: supported
  ('vgg16-padam-p', (0.25,)): (92.0, 1, 0.5, None),  # beats p 1/16: contradicted
  ('vgg16-adam', ()): (90.0, 1, 0.4, 0.6),  # padam's early loss lower: supported
  ('vgg16-amsgrad', ()): (90.0, 1, 0.4, 0.25),  # padam's early loss higher: contradicted
  ('vgg16-sgdm', ()): (85.0, 1, 0.4, None),  # 5 below adam and amsgrad: supported
  ('resnet18-padam-p-lr', (0.125, 0.1)): (90.0, 1, 0.6, None),
  ('resnet18-adam', ()): (90.0, 1, 0.3, None),  # padam's loss higher: contradicted
  ('resnet18-sgdm', ()): (90.5, 1, 0.7, None),  # above adam by less than the margin
  ('resnet18-padam-p-lr', (0.0625, 0.1)): (91.0, 1, 0.6, None),  # beats p 1/8 and 1/4
  ('resnet18-padam-p-lr', (0.0625, 0.001)): (80.0, 1, 0.9, None),
  ('resnet18-padam-p-lr', (0.25, 0.1)): (85.0, 1, 0.6, None),
  ('resnet18-padam-p-lr', (0.25, 0.001)): (88.0, 1, 0.6, None),  # interaction +14
  ('resnet18-padam-p-schedule', ()): (89.0, 1, 0.6, None),  # below fixed p: contradicted
}
_DEFAULT = (70.0, 1, 1.0, None)
_DIVERGED = ('wrn16_4-sgdm', 3)  # this member diverges: excluded, counted
# AMSGrad on WRN collapses to 85% in the last epoch: the mean of the last two epochs is
# Padam's (within 1 point: supported), the median of the last four is not (contradicted).
_COLLAPSE = ('wrn16_4-amsgrad', EPOCHS, 85.0)

A, M = ('final_accuracy', 'median_late_accuracy'), ('median_late_accuracy',)
# (a phrase of the claim, its contrast, measures, verdict): what the runs above must give.
DESIGNED = [
  ('(Table 2)', 'padam - adam', A, stats.SUPPORTED),
  ('(Table 2)', 'padam - amsgrad', ('final_accuracy',), stats.SUPPORTED),
  ('(Table 2)', 'padam - amsgrad', M, stats.CONTRADICTED),
  ('(Table 2)', 'padam - sgdm', A, stats.INCONCLUSIVE),
  ('whole run on WRN-16-4', 'padam - sgdm', ('mean_train_loss',), stats.SUPPORTED),
  ('whole run on WRN-16-4', 'padam - adam', ('mean_train_loss',), stats.SUPPORTED),
  # Read epoch by epoch: below in every epoch (supported); above in some (contradicted).
  ('whole run on WRN-16-4', 'padam - sgdm', ('train_loss_each_epoch',), stats.SUPPORTED),
  ('whole run on ResNet-18', 'padam - adam', ('train_loss_each_epoch',), stats.CONTRADICTED),
  ('whole run on ResNet-18', 'padam - adam', ('mean_train_loss',), stats.CONTRADICTED),
  ('30th of 100 epochs on VGG-16', 'padam - adam', ('early_train_loss',), stats.SUPPORTED),
  ('30th of 100 epochs on VGG-16', 'padam - amsgrad', ('early_train_loss',), stats.CONTRADICTED),
  ('above Adam and AMSGrad on VGG-16', 'sgdm - adam', A, stats.SUPPORTED),
  ('above Adam and AMSGrad on ResNet-18', 'sgdm - adam', A, stats.SUPPORTED),  # x < 1
  ('above Adam and AMSGrad on ResNet-18', 'sgdm - amsgrad', A, stats.CONTRADICTED),
  ('VGG-16 (Section 3.5', 'p 1/16 - p 1/8', A, stats.SUPPORTED),
  ('VGG-16 (Section 3.5', 'p 1/16 - p 1/4', A, stats.CONTRADICTED),
  ('(Figure 2', 'p 1/16 lr 0.1 - p 1/8 lr 0.1', A, stats.SUPPORTED),
  ('(Figure 2', 'p 1/16 lr 0.1 - p 1/4 lr 0.1', A, stats.SUPPORTED),
  ('lower test error (Figure 3)', 'p 1/16 lr 0.1 - p 1/16 lr 0.001', A, stats.SUPPORTED),
  (
    'lower train loss (Figure 3)',
    'p 1/16 lr 0.1 - p 1/16 lr 0.001',
    ('mean_train_loss',),
    stats.SUPPORTED,
  ),
  ('smaller lr performs better', 'p 1/4 lr 0.001 - p 1/4 lr 0.1', A, stats.SUPPORTED),
  ('(Figure 3)', '(p 1/16: lr 0.1 - lr 0.001) - (p 1/4: lr 0.1 - lr 0.001)', A, stats.SUPPORTED),
  ('proposal', 'p schedule - p 1/8 lr 0.1', A, stats.CONTRADICTED),
]

# The paper preset's WRN runs: Padam half a point below SGDM (within the 1-point margin),
# above Adam, below AMSGrad; its early train loss 2% above Adam's (within 5%) and 50% above
# AMSGrad's.
_PAPER_RUNS = {
  'wrn16_4-padam': (90.0, 1, 0.2, 0.300),
  'wrn16_4-sgdm': (90.5, 1, 0.2, 0.300),
  'wrn16_4-adam': (88.0, 1, 0.2, 0.295),
  'wrn16_4-amsgrad': (92.0, 1, 0.2, 0.200),
}
PAPER_DESIGNED = [
  ('at least SGDM', 'padam - sgdm', A, stats.SUPPORTED),
  ('generalization gap', 'padam - adam', A, stats.SUPPORTED),
  ('generalization gap', 'padam - amsgrad', A, stats.CONTRADICTED),
  ('as fast as', 'padam - 1.05 x adam', ('early_paper_train_loss',), stats.SUPPORTED),
  ('as fast as', 'padam - 1.05 x amsgrad', ('early_paper_train_loss',), stats.CONTRADICTED),
]


def _record(run, seed, epoch):
  accuracy, noise, loss, early = run
  if early is not None and epoch <= 4:
    loss = early
  if epoch <= EPOCHS - 4:
    accuracy = 50.0  # neither accuracy measure reads these epochs
  return {
    'train_loss': loss + 0.01 * NOISE[seed],
    'test_loss': 1.0,
    'test_error': 1 - (accuracy + noise * NOISE[seed]) / 100,
  }


def _metrics(sweep_name, values, index, epoch):
  key = (sweep_name, tuple(v for k, v in values.items() if k != 'seed'))
  run = _RUNS.get(key, _DEFAULT)
  if (sweep_name, index) == _DIVERGED and epoch >= 5:
    return None
  if (sweep_name, epoch) == _COLLAPSE[:2]:
    run = (_COLLAPSE[2], *run[1:])
  return _record(run, values['seed'], epoch)


def _paper_metrics(sweep_name, values, index, epoch):
  del index
  return _record(_PAPER_RUNS[sweep_name], values['seed'], epoch)


@pytest.fixture(scope='module')
def reproduction(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('claims'))
  for spec in suites.sweeps_of(['all']):
    if spec.name != 'resnet18-padam-p-schedule':
      fake_runs.write_sweep(workdir, spec, SEEDS, EPOCHS, _metrics)
  return workdir


@pytest.fixture(scope='module')
def paper(tmp_path_factory):
  """Table 2's runs under the authors' preset."""
  workdir = str(tmp_path_factory.mktemp('paper'))
  for spec in suites.sweeps_of(['table2']):
    fake_runs.write_sweep(workdir, spec, SEEDS, EPOCHS, _paper_metrics, preset='paper')
  return workdir


@pytest.fixture(scope='module')
def judged(reproduction):
  """Every claim judged once with the p-schedule sweep missing, once with it trained."""
  before = {c: judging.judge(reproduction, c) for c in claims.CLAIMS}
  fake_runs.write_sweep(
    reproduction, suites.SWEEPS['resnet18-padam-p-schedule'], SEEDS, EPOCHS, _metrics
  )
  return before, {c: judging.judge(reproduction, c) for c in claims.CLAIMS}


def _check_designed(results, designed, network=''):
  for phrase, contrast, names, want in designed:
    rows = [
      (c, r)
      for c, r in results.items()
      if phrase in c.claim
      and c.contrast == contrast
      and c.measure in names
      and c.terms[0][1].sweep.startswith(network)
    ]
    assert len(rows) == len(names), (phrase, contrast)
    for claim, result in rows:
      assert result.verdict == want, (phrase, contrast, claim.measure, result.interval)


def test_verdicts_known_by_construction(judged):
  _, after = judged
  _check_designed(after, DESIGNED)
  within = next(
    r for c, r in after.items() if c.contrast == 'padam - adam' and c.measure == 'final_accuracy'
  )
  assert within.interval.estimate == pytest.approx(-0.3, abs=1e-6)
  assert within.epochs == EPOCHS and within.interval.seeds == (SEEDS, SEEDS)


def test_every_accuracy_claim_has_a_median_row_beside_it():
  for rows in (claims.CLAIMS, claims.PAPER_CLAIMS):
    for claim, following in zip(rows, [*rows[1:], None], strict=True):
      if claim.measure == 'final_accuracy':
        assert following == dataclasses.replace(claim, measure='median_late_accuracy')
  assert not {c.measure for c in claims.CLAIMS + claims.PAPER_CLAIMS} - set(measures.MEASURES)


def test_the_paper_preset_gets_its_own_claims(paper, reproduction, tmp_path):
  assert (
    judging.protocol_of(paper) == 'paper' and judging.protocol_of(reproduction) == 'reproduction'
  )
  paper_judged = {c: judging.judge(paper, c) for c in claims.PAPER_CLAIMS}
  _check_designed(paper_judged, PAPER_DESIGNED, network='wrn16_4')
  # ResNet-18 and VGG-16 under the paper preset: their rows say which sweeps are not run.
  vgg = [(c, r) for c, r in paper_judged.items() if c.terms[0][1].sweep.startswith('vgg16')]
  assert vgg and all(
    r.missing == tuple(sorted(curve.sweep for _, curve in c.terms)) for c, r in vgg
  )
  # "Level with", as an equivalence within the 1-point margin: Padam 2 points above Adam.
  level = [
    c for c in paper_judged if 'level with' in c.claim and c.terms[0][1].sweep.startswith('wrn16_4')
  ]
  assert {paper_judged[c].verdict for c in level if c.contrast == 'padam - adam'} == {
    stats.CONTRADICTED
  }
  table = claims_table.write(paper, str(tmp_path))
  assert table.startswith('| claim (Chen & Gu) |')
  assert len(table.splitlines()) == 2 + len(claims.PAPER_CLAIMS)
  assert '| x > -1 |' in table and 'mean of epochs 1-3 (the first quarter' in table
  with open(tmp_path / 'claims.md') as f:
    assert f.read().startswith('Claims of Chen & Gu, under the `paper` preset')
  mixed = tmp_path / 'mixed'
  shutil.copytree(paper, mixed)
  shutil.copytree(os.path.join(reproduction, 'vgg16-adam'), mixed / 'vgg16-adam')
  with pytest.raises(ValueError, match='more than one preset'):
    judging.protocol_of(str(mixed))


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
  table = claims_table.write(reproduction, os.path.join(reproduction, 'figures'))
  assert len(table.splitlines()) == 2 + len(claims.CLAIMS)
  assert '| contradicted |' in table and '| supported |' in table
  with open(os.path.join(reproduction, 'figures', 'claims.md')) as f:
    assert f.read().split('\n\n')[1] == claims_table.RULE


def test_summary_in_plain_words(reproduction, paper, tmp_path, monkeypatch):
  """Both protocols in one table; the measures' disagreement and a missing protocol read as
  'cannot be told at this scale'. (Figures: tests/test_report.py.)"""
  monkeypatch.setitem(sys.modules, 'matplotlib', None)
  page = tmp_path / 'page.md'  # an old one-line table between prose, pasted over
  page.write_text('before\n\n| claim | whose | WRN-16-4 | ResNet-18 | VGG-16 |\n| old |\n\nafter\n')
  with pytest.warns(UserWarning, match='matplotlib'):
    table = summary.write([paper, reproduction], str(tmp_path), paste_into=[str(page)])
  rows = {}
  for line in table.splitlines()[2:]:
    cells = line.split(' | ')
    rows[cells[1], cells[2].split(',')[0]] = cells
  groups = {dataclasses.replace(c, measure='') for rows in claims.CLAIM_SETS.values() for c in rows}
  assert len(rows) == len(table.splitlines()) - 2 == len(groups)
  within = 'Padam is within 1 point of Adam and AMSGrad on WRN-16-4 (Table 2)'
  assert rows[within, 'x = padam - adam'][4] == summary.HELD
  collapse = rows[within, 'x = padam - amsgrad']
  assert collapse[4] == summary.CANNOT_TELL and collapse[5].startswith('the measures disagree')
  assert summary.NOT_HELD in {cells[4] for cells in rows.values()}
  assert 'Chen & Gu (`paper` preset)' in table
  with open(tmp_path / summary.SUMMARY_FILE) as f:
    text = f.read()
  assert table in text and 'paper/claims.md' in text and 'reproduction/claims.md' in text
  pasted = page.read_text()
  assert pasted.startswith('before\n\n| claim | whose |') and pasted.endswith('|\n\nafter\n')
  assert '| old |' not in pasted and table not in pasted  # the page held the short table only
  page.write_text('no table here\n')
  with pytest.raises(ValueError, match='page.md holds no verdict table to replace'):
    summary.replace_tables(str(page), [table])
  alone = summary.markdown(summary.judge_all(summary.workdirs_by_protocol([reproduction])))
  paper_rows = [line for line in alone.splitlines() if line.startswith('| Chen & Gu')]
  assert len(paper_rows) == len({dataclasses.replace(c, measure='') for c in claims.PAPER_CLAIMS})
  assert all(f'| {summary.NOT_RUN} | waits for ' in line for line in paper_rows)
  # One line per claim, a column per network: the paper's claims are one row each.
  compact = summary.compact_markdown(
    summary.judge_all(summary.workdirs_by_protocol([paper, reproduction]))
  )
  assert len(compact.splitlines()) == 2 + len(
    {(p, c.row) for p, rows in claims.CLAIM_SETS.items() for c in rows}
  )
  row = 'Padam is within 1 point of Adam and AMSGrad (Table 2)'
  assert f'| {row} | the student reproduction | padam - adam: held; padam - amsgrad: ' in compact
  assert f'| {row} | the student reproduction | ' in compact and ' | - | - |' in compact
  level = next(line for line in compact.splitlines() if line.startswith('| Padam is level with'))
  assert level.endswith(f'| Chen & Gu | not held | {summary.NOT_RUN} | {summary.NOT_RUN} |')
  with pytest.raises(ValueError, match='both hold runs'):
    summary.workdirs_by_protocol([reproduction, reproduction])


def test_each_protocol_draws_the_suites_of_its_own_sweeps():
  assert summary.drawn_suites('reproduction') == list(suites.ALL_SUITES)
  assert summary.drawn_suites('paper') == ['table2', 'optimizers']
  assert summary.drawn_suites('reproduction_paper_wd') == ['table2']


def test_plain_verdict_words():
  claim = dataclasses.replace(claims.CLAIMS[0], confidence=claims.CONFIDENCE)
  interval = stats.Interval(-0.3, -0.5, -0.1, (3, 3))

  def judged(verdict, needed=None):
    return judging.Judged(claim, interval, verdict, 30, 0, (), needed)

  held = summary.plain_verdict([judged(stats.SUPPORTED), judged(stats.SUPPORTED)])
  assert held[0] == summary.HELD and held[1].startswith(
    'mean of epochs 26-30: -0.30 [-0.50, -0.10], held'
  )
  assert summary.plain_verdict([judged(stats.CONTRADICTED)])[0] == summary.NOT_HELD
  mixed = summary.plain_verdict([judged(stats.SUPPORTED), judged(stats.INCONCLUSIVE, 7)])
  assert mixed[0] == summary.CANNOT_TELL
  assert mixed[1].startswith('the measures disagree, only the mean of epochs 26-30 shows it: ')
  assert summary.plain_verdict([judged(stats.INCONCLUSIVE, 7)]) == (
    summary.CANNOT_TELL,
    'mean of epochs 26-30: -0.30 [-0.50, -0.10], needs 7 seeds',
  )
  assert summary.plain_verdict([judging.judge(None, claim)]) == (
    summary.NOT_RUN,
    'waits for wrn16_4-adam, wrn16_4-padam',
  )


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


def test_the_docs_show_the_committed_runs_verdicts():
  """README.md opens with the one-line-per-claim table and docs/reproduction.md with the
  full one that the committed converged runs give today, so a run added to results/
  without regenerating the docs fails here."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  results = os.path.join(root, 'results')
  workdirs = sorted(
    os.path.join(results, name) for name in os.listdir(results) if name.startswith('cpu_converged')
  )
  judged = summary.judge_all(summary.workdirs_by_protocol(workdirs))
  compact, table = summary.compact_markdown(judged), summary.markdown(judged)
  regenerate = (
    'regenerate with python -m experiments.plot --summary '
    + ','.join(os.path.relpath(w, root) for w in workdirs)
    + ' --output_dir docs/cpu_converged --paste_into README.md,docs/reproduction.md'
  )
  pages = {'README.md': compact, 'docs/reproduction.md': table}
  pages['docs/cpu_converged/summary.md'] = compact + table
  for page, want in pages.items():
    with open(os.path.join(root, page)) as f:
      text = f.read()
    for part in (compact, table):
      if part in want:
        assert part in text, f'{page} does not show the committed runs\' verdicts: {regenerate}'


def test_table2_rows_are_corrected_for_two_looks(reproduction):
  """Rows that read Table 2's runs only are judged at 97.5%, the others at 95%; the two
  looks are shown side by side."""
  for claim in claims.CLAIMS:
    table2_only = {curve.sweep for _, curve in claim.terms} <= claims.TABLE2_SWEEPS
    assert claim.confidence == (0.975 if table2_only else 0.95), claim
  corrected = [c for c in claims.CLAIMS if c.confidence == claims.TWO_LOOKS_CONFIDENCE]
  looks = claims_table.two_looks_markdown(reproduction).splitlines()
  assert len(looks) == 2 + len(corrected)
  assert looks[2].startswith(f'| {corrected[0].claim} |') and '97.5%' in looks[2]


def test_the_confound_split_reads_three_presets(reproduction, paper, tmp_path):
  """(padam - adam at weight decay 5e-4, constant lr) - (the same under reproduction): the
  arm's Padam level with Adam, the reproduction's 0.3 below, so the weight decay adds 0.3."""
  arm = str(tmp_path / 'arm')
  for spec in suites.sweeps_of(['table2']):
    fake_runs.write_sweep(arm, spec, SEEDS, EPOCHS, _paper_metrics, preset='reproduction_paper_wd')
  assert judging.protocol_of(arm) == 'reproduction_paper_wd'
  workdirs = {'reproduction': reproduction, 'paper': paper, 'reproduction_paper_wd': arm}
  rows = {
    (c.contrast, c.measure): judging.judge(arm, c, workdirs)
    for c in claims.SPLIT_CLAIMS
    if c.sources
  }
  wd = rows[
    '(padam - adam, reproduction_paper_wd) - (padam - adam, reproduction)', 'final_accuracy'
  ]
  # The arm reuses the paper runs' numbers: padam - adam = +2.0 there, -0.3 under reproduction.
  assert wd.interval.estimate == pytest.approx(2.3, abs=1e-6)
  assert wd.interval.seeds == (SEEDS,) * 4
  schedule = rows['(padam - adam, paper) - (padam - adam, reproduction_paper_wd)', 'final_accuracy']
  assert schedule.interval.estimate == pytest.approx(0.0, abs=1e-6)
  alone = judging.judge(arm, next(c for c in claims.SPLIT_CLAIMS if c.sources))
  assert alone.missing and all(m.startswith(('reproduction:', 'paper:')) for m in alone.missing)


def test_a_deciding_bound_is_never_printed_as_zero():
  assert claims_table.signed(0.004, 2) == '+0.004'
  assert claims_table.signed(-0.00004, 3) == '-0.00004'
  assert claims_table.signed(0.0, 2) == '+0.00'
  assert claims_table.signed(1.234, 2) == '+1.23'
