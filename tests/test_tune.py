"""The tuning launcher: a search resumes to the same trials and winners, a winner is chosen
on the validation split alone, the report, and the errors of a bad command."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, TINY, subprocess_env

from padam_jax import data
from padam_jax.reproduction import suites
from padam_jax.rundir import checkpoint, runlog
from padam_jax.tuning import report, run, studies
from padam_jax.tuning.search import Dimension, SearchSpace

# The tiny run's shapes (its compiled programs), one epoch, 20 held-out digits.
TINY_SCALE = suites.Scale(
  dataset='digits',
  width=TINY['width'],
  epochs=1,
  train_size=TINY['train_size'],
  test_size=TINY['test_size'],
  description='tiny',
)
STUDY = studies.Study(
  name='tiny',
  description='A tiny study',
  model=TINY['model'],
  scale='tiny',
  preset='reproduction',
  validation_size=20,
  spaces=(
    SearchSpace(
      'padam', (Dimension('learning_rate', 0.01, 0.3), Dimension('partial', 0.0, 0.25, 'linear'))
    ),
    SearchSpace('sgdm', (Dimension('learning_rate', 0.01, 0.3),)),
  ),
  trials=2,
  draw_seed=0,
  trial_seed=TINY['seed'],
  rerun_seeds=(4, 5),
)
OVERRIDES = {'batch_size': TINY['batch_size']}


def _study(workdir, **kwargs):
  said = []
  content = run.run_study(
    STUDY,
    str(workdir),
    overrides=OVERRIDES,
    dataset=data.load_dataset('digits'),
    progress=said.append,
    **kwargs,
  )
  return content, said


@pytest.fixture(scope='module')
def searched(tmp_path_factory):
  """Padam's trials alone (a search stopped after them), then padam again (its reruns),
  then sgdm's trials alone: 6 runs. Returns the workdir, each command's tuning.json and
  progress lines."""
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(suites.SCALES, 'tiny', TINY_SCALE)
    workdir = tmp_path_factory.mktemp('tune')
    commands = [
      dict(optimizers=['padam'], trials_only=True),
      dict(optimizers=['padam']),
      dict(optimizers=['sgdm'], trials_only=True),
    ]
    yield workdir, *zip(*(_study(workdir, **command) for command in commands), strict=True)


@pytest.mark.e2e
def test_a_stopped_search_resumes_to_the_same_trials_and_winners(searched, tmp_path):
  workdir, (first, second, last), (_, said, _) = searched
  assert list(first['optimizers']) == ['padam']
  assert not any(r['complete'] for r in first['optimizers']['padam']['reruns'])
  for key in ('winner', 'setting', 'trials', 'on_edge'):
    assert second['optimizers']['padam'][key] == first['optimizers']['padam'][key], key
  # The second command found padam's trials finished and trained its reruns: a line per run.
  settings = [t['setting'] for t in first['optimizers']['padam']['trials']]
  assert [line for line in said if line.endswith(': complete')] == [
    f'[{i + 1}/4] padam trial {i + 1}/2 ({run.describe(setting)}): complete'
    for i, setting in enumerate(settings)
  ]
  assert sum(line.startswith('[') and line.endswith(' s so far)') for line in said) == 4
  assert all(r['complete'] for r in second['optimizers']['padam']['reruns'])
  # The last command added sgdm's trials and winner, and kept padam's.
  assert last['optimizers']['padam'] == second['optimizers']['padam']
  assert not any(r['complete'] for r in last['optimizers']['sgdm']['reruns'])
  with open(workdir / run.TUNING_FILE) as f:
    assert json.load(f) == last

  # Run again without tuning.json, every run finished: nothing trained, the same record.
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  os.remove(copy / run.TUNING_FILE)
  again, said = _study(copy, trials_only=True)
  assert again == last and sum(line.endswith(': complete') for line in said) == 4

  # The record again from the runs' files alone (no checkpoints), training nothing; with one
  # of sgdm's trials unfinished, sgdm is left out and counted as under way.
  for checkpoints in list(copy.glob(f'**/{checkpoint.CHECKPOINTS_DIR}')):
    shutil.rmtree(checkpoints)
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(run.suites.SCALES, 'tiny', TINY_SCALE)
    said = []
    assert run.report_study(STUDY, str(copy), said.append) == last
    assert not any(line.startswith('[') for line in said)
    runlog.keep_epochs_up_to(run.trial_dir(str(copy), 'sgdm', 1), 0)
    partial = run.report_study(STUDY, str(copy), said.append)
  assert list(partial['optimizers']) == ['padam']
  assert partial['under_way'] == {'sgdm': [{'index': 0} | last['optimizers']['sgdm']['trials'][0]]}
  text = (copy / report.REPORT_FILE).read_text()
  assert "5 of the study's 8 runs are finished" in text
  assert '| padam | 2 of 2 | 2 of 2 |' in text and '| sgdm | 1 of 2 | 0 of 2 |' in text

  # Other draws in the workdir (here: another draw seed) are refused before any training.
  path = os.path.join(copy, run.TRIALS_DIR, 'padam', run.TRIALS_FILE)
  recorded = runlog.read_json_object(path)
  runlog.write_json(path, {**recorded, 'draw_seed': 1})
  with pytest.raises(runlog.ConfigMismatchError, match='other trials'):
    _study(copy)


@pytest.mark.e2e
def test_the_finished_runs_records_are_copied_and_report_as_the_search(searched, tmp_path):
  workdir, (*_, whole), _ = searched
  source = tmp_path / 'search'
  shutil.copytree(workdir, source)
  runlog.keep_epochs_up_to(run.trial_dir(str(source), 'sgdm', 1), 0)  # one run under way
  committed = tmp_path / 'committed'
  said = []
  partial = run.report_study(
    STUDY, str(committed), said.append, copy_from=str(source), overrides=OVERRIDES
  )
  assert list(partial['optimizers']) == ['padam'] and len(partial['under_way']['sgdm']) == 1
  assert said[0].startswith(f'copied the records of 5 finished run(s) from {source}: trials')
  # The records alone: trials.json, and config.json and metrics.jsonl of the 5 finished runs.
  held = {str(p.relative_to(committed)) for p in committed.rglob('*') if p.is_file()}
  runs = {os.path.dirname(p) for p in held if p.endswith(runlog.METRICS_FILE)}
  assert len(runs) == 5 and os.path.join('trials', 'sgdm', 'trial=1') not in runs
  written = {run.TUNING_FILE, report.REPORT_FILE} | ({report.FIGURE_FILE} & held)
  drawn = {os.path.join('trials', name, run.TRIALS_FILE) for name in ('padam', 'sgdm')}
  assert held == {os.path.join(r, f) for r in runs for f in run.RECORD_FILES} | drawn | written
  # The run finished later is copied on its own; the record is the whole search's.
  shutil.rmtree(source)
  shutil.copytree(workdir, source)
  copied = run.copy_records(STUDY, str(source), str(committed), said.append, OVERRIDES)
  assert copied == [os.path.join('trials', 'sgdm', 'trial=1')]
  assert (
    run.report_study(STUDY, str(committed), copy_from=str(source), overrides=OVERRIDES) == whole
  )
  # Refused before anything is copied: other records of a run already held, a run of other
  # settings, other draws, a folder without a study.
  shutil.rmtree(committed / 'trials' / 'sgdm' / 'trial=0')
  _rewrite(run.rerun_dir(str(source), 'padam', 4), lambda r: {**r, 'test_error': 0.5})
  with pytest.raises(ValueError, match=r'seed=4 holds other records than .*nothing copied'):
    run.copy_records(STUDY, str(source), str(committed), overrides=OVERRIDES)
  with pytest.raises(runlog.ConfigMismatchError, match='batch_size'):
    run.copy_records(STUDY, str(source), str(committed))  # not the settings trained
  path = os.path.join(source, run.TRIALS_DIR, 'sgdm', run.TRIALS_FILE)
  runlog.write_json(path, {**runlog.read_json_object(path), 'draw_seed': 1})
  with pytest.raises(runlog.ConfigMismatchError, match='other trials'):
    run.copy_records(STUDY, str(source), str(committed), overrides=OVERRIDES)
  with pytest.raises(ValueError, match='holds no tuning study'):
    run.copy_records(STUDY, str(tmp_path / 'nothing'), str(committed))
  assert not (committed / 'trials' / 'sgdm' / 'trial=0').exists()


def _rewrite(run_dir, change):
  """Replaces the run's records by ``change(record)`` of each (with fresh checksums)."""
  records = runlog.read_metrics(run_dir)
  runlog.keep_epochs_up_to(run_dir, 0)
  for record in records:
    runlog.append_metrics(run_dir, change(dict(record)))


@pytest.mark.e2e
def test_the_winner_is_chosen_on_the_validation_split_never_the_test_set(searched, tmp_path):
  workdir, (*_, whole), _ = searched
  copy = tmp_path / 'copy'
  shutil.copytree(workdir / run.TRIALS_DIR, copy / run.TRIALS_DIR)
  found = run.plan(STUDY, ['padam'], overrides=OVERRIDES)['padam']
  winner = whole['optimizers']['padam']['winner']
  loser = 1 - winner
  # The loser made perfect on the test set, the winner hopeless: the same winner.
  _rewrite(run.trial_dir(str(copy), 'padam', loser), lambda r: {**r, 'test_error': 0.0})
  _rewrite(run.trial_dir(str(copy), 'padam', winner), lambda r: {**r, 'test_error': 1.0})
  assert run.select(STUDY, found, str(copy)).winner == winner
  # The same change on the validation split does move it (the check above can fail).
  _rewrite(run.trial_dir(str(copy), 'padam', loser), lambda r: {**r, 'validation_error': 0.0})
  assert run.select(STUDY, found, str(copy)).winner == loser
  # A trial without validation records is refused, not scored on the test set.
  _rewrite(
    run.trial_dir(str(copy), 'padam', winner),
    lambda r: {k: v for k, v in r.items() if not k.startswith('validation_')},
  )
  with pytest.raises(ValueError, match='no validation_error'):
    run.select(STUDY, found, str(copy))


@pytest.mark.e2e
def test_the_report(searched):
  workdir, (*_, whole), _ = searched
  text = (workdir / report.REPORT_FILE).read_text()
  assert '## Winners' in text and '| padam | ' in text and '| sgdm | ' in text
  assert len(report.rerun_records(str(workdir), whole)['padam']) == 2
  reruns = text.split('## The winners on fresh seeds', 1)[1]
  cell = '| padam | 2 of 2 | '
  assert cell in reruns and ' +- ' in reruns.split(cell, 1)[1].split('\n', 1)[0]
  assert '| sgdm | 0 of 2 | not rerun yet |' in reruns
  assert '| k=1 | k=2 |' in text
  # The claims rows: SGDM not rerun yet, so not run; one row per claim and measure.
  claims = text.split('## Claims', 1)[1]
  assert claims.count('| tuned Padam ') == 2 * len(report.CLAIMS)
  assert '| x = padam - sgdm, mean of epochs' in claims and '| not run | inconclusive |' in claims
  entry = whole['optimizers']['padam']
  assert entry['setting'] == entry['trials'][entry['winner']]['setting']
  assert set(entry['setting']) == {'learning_rate', 'partial'}
  if (workdir / report.FIGURE_FILE).exists():
    assert f'({report.FIGURE_FILE})' in text


COMMITTED = str(ROOT / 'results' / 'tuning_wrn16_4_paper')
# What rebuilds the committed record, report and docs block (docs/tuning.md's command).
REGENERATE = (
  'regenerate with python -m experiments.tune --study wrn16_4_paper '
  f'--workdir {os.path.relpath(COMMITTED, ROOT)} --report_only --paste_into docs/reproduction.md'
)


def test_the_committed_record_is_what_the_committed_runs_give():
  """The committed ``tuning.json`` and ``report.md`` are those of the committed runs today,
  so a run added without regenerating them fails here (no figure is drawn)."""
  study = studies.STUDIES['wrn16_4_paper']
  content = run.summary(study, run.plan(study), COMMITTED)
  assert runlog.read_json_object(os.path.join(COMMITTED, run.TUNING_FILE)) == json.loads(
    json.dumps(content)
  ), REGENERATE
  figure = os.path.join(COMMITTED, report.FIGURE_FILE)
  text = report.markdown(study, COMMITTED, content, figure if os.path.exists(figure) else None)
  with open(os.path.join(COMMITTED, report.REPORT_FILE)) as f:
    assert f.read() == text, REGENERATE


def test_the_docs_show_the_committed_report():
  page = str(ROOT / 'docs' / 'reproduction.md')
  with open(os.path.join(COMMITTED, report.REPORT_FILE)) as f:
    expected = report.page_block(f.read(), COMMITTED, page)
  assert report.shown_block(page) == expected, REGENERATE


def test_paste_replaces_only_the_block_between_its_lines(tmp_path):
  workdir = tmp_path / 'study'
  workdir.mkdir()
  (workdir / report.REPORT_FILE).write_text(
    '# Tuning study\n\nIntro.\n\n## Winners\n\n| a |\n|---|\n\n![every trial](trials.png)\n'
    '![a logo](https://example.org/logo.png)\n'
  )
  page = tmp_path / 'docs' / 'page.md'
  page.parent.mkdir()
  page.write_text(f'# Page\n\n{report.PAGE_BEGIN}\nold\n{report.PAGE_END}\n\nAfter.\n')
  for _ in range(2):  # pasting again changes nothing
    report.paste(str(page), str(workdir))
    assert page.read_text() == (
      f'# Page\n\n{report.PAGE_BEGIN}\n\nIntro.\n\n### Winners\n\n| a |\n|---|\n\n'
      '![every trial](../study/trials.png)\n![a logo](https://example.org/logo.png)\n\n'
      f'{report.PAGE_END}\n\nAfter.\n'
    )
  for text, counts in (
    ('no place\n', '0 and 0'),
    (f'{report.PAGE_END}\n{report.PAGE_BEGIN}\n', '1 and 1'),  # the wrong way round
    (f'{report.PAGE_BEGIN}\n{report.PAGE_END}\n{report.PAGE_BEGIN}\n', '2 and 1'),
    (f'see {report.PAGE_BEGIN}\n{report.PAGE_END}\n', '0 and 1'),  # not a line of its own
  ):
    page.write_text(text)
    with pytest.raises(ValueError, match=rf'needs one line .* \(it has {counts}\)$'):
      run.report_study(STUDY, str(tmp_path / 'new'), paste_into=[str(page)])
  assert not (tmp_path / 'new').exists()


def test_bad_commands_fail_before_any_work(tmp_path):
  afile = tmp_path / 'afile'
  afile.write_text('')
  with pytest.raises(ValueError, match='is a file'):
    _study(afile)
  (tmp_path / 'other').mkdir()
  (tmp_path / 'other' / 'sweep.json').write_text('{}')
  with pytest.raises(ValueError, match='no tuning study'):
    _study(tmp_path / 'other')
  with pytest.raises(ValueError, match='holds no tuning study'):
    run.report_study(STUDY, str(tmp_path / 'new'))
  with pytest.raises(ValueError, match='searches padam, sgdm; not adam'):
    _study(tmp_path / 'new', optimizers=['adam'])
  assert not (tmp_path / 'new').exists()
  for flags, message in (
    (['--study=nope'], 'wrn16_4_paper'),
    (['--study=wrn16_4_paper', '--optimizers=lion'], 'not lion'),
    (['--study=wrn16_4_paper', f'--copy_from={tmp_path}'], 'add --report_only'),
  ):
    child = subprocess.run(
      [sys.executable, '-m', 'experiments.tune', f'--workdir={tmp_path / "run"}', *flags],
      env=subprocess_env(),
      capture_output=True,
      text=True,
      timeout=300,
    )
    assert child.returncode != 0 and message in child.stderr, child.stderr
  assert not (tmp_path / 'run').exists()
