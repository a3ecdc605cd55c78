"""Whole runs JAX vs PyTorch: the PyTorch pipeline's pieces, the shared-batch control, the
equivalence test and the command's report (``padam_jax.crosscheck.whole_run``)."""

import dataclasses
import os

import jax
import numpy as np
import pytest
import torch
from conftest import TINY, run_python
from scipy import stats as scipy_stats

from padam_jax import data, stats
from padam_jax.crosscheck import model_trajectory, whole_run
from padam_jax.reference import training
from padam_jax.rundir import runlog
from padam_jax.training import config as config_lib
from padam_jax.training import loop
from padam_jax.training import trainer as trainer_lib

_PADDING = 4
_DRAWS = 2000


def _placements(outputs: np.ndarray, image: np.ndarray) -> np.ndarray:
  """For each output ``[N, H, W]`` of cropping and flipping ``image`` ``[H, W]`` (nonzero
  values, all distinct), its index among the 81 crop offsets x 2 flips; fails on an output
  that is none of them."""
  h, w = image.shape
  padded = np.pad(image, _PADDING)
  candidates = np.stack(
    [
      window[:, ::-1] if flip else window
      for dy in range(2 * _PADDING + 1)
      for dx in range(2 * _PADDING + 1)
      for flip in (False, True)
      for window in [padded[dy : dy + h, dx : dx + w]]
    ]
  )
  matches = (outputs[:, None] == candidates[None]).all(axis=(2, 3))
  assert (matches.sum(axis=1) == 1).all(), 'an output is no zero-padded crop (and flip)'
  return matches.argmax(axis=1)


def test_crop_offsets_and_flips_are_uniform_in_both_frameworks():
  h = w = 8
  image = (1 + np.arange(h * w, dtype=np.uint8)).reshape(h, w)
  batch = np.broadcast_to(image[None, :, :, None], (_DRAWS, h, w, 1)).copy()
  ours = np.asarray(data.random_crop_flip(jax.random.key(0), batch))[..., 0]
  theirs = training.random_crop_flip(
    torch.from_numpy(batch), torch.Generator().manual_seed(0)
  ).numpy()[..., 0]
  sides = 2 * _PADDING + 1
  counts = {}
  for name, outputs in (('jax', ours), ('torch', theirs)):
    placement = _placements(outputs, image)
    dy, dx, flip = placement // (2 * sides), placement // 2 % sides, placement % 2
    for axis, values, bins in (('dy', dy, sides), ('dx', dx, sides), ('flip', flip, 2)):
      counts[name, axis] = np.bincount(values, minlength=bins)
      assert scipy_stats.chisquare(counts[name, axis]).pvalue > 1e-3, (name, axis)
  for axis in ('dy', 'dx', 'flip'):  # and the two frameworks' draws alike
    table = np.stack([counts['jax', axis], counts['torch', axis]])
    assert scipy_stats.chi2_contingency(table).pvalue > 1e-3, axis


def test_normalisation_uses_the_training_set_statistics(tiny_dataset):
  train = data.load_dataset('digits').train_images.astype(np.float64) / 255
  np.testing.assert_allclose(tiny_dataset.mean, train.mean(axis=(0, 1, 2)), rtol=1e-6)
  np.testing.assert_allclose(tiny_dataset.std, train.std(axis=(0, 1, 2)), rtol=1e-6)
  images = tiny_dataset.train_images[:5]
  ours = np.asarray(data.normalize(images, tiny_dataset.mean, tiny_dataset.std))
  theirs = training.normalize(torch.from_numpy(images), tiny_dataset.mean, tiny_dataset.std)
  np.testing.assert_allclose(theirs.permute(0, 2, 3, 1).numpy(), ours, rtol=1e-6, atol=1e-6)


def test_shuffled_batches_keep_the_last_partial_batch():
  batches = training.shuffled_batches(70, 32, torch.Generator().manual_seed(0))
  assert [len(b) for b in batches] == [32, 32, 6]
  assert sorted(torch.cat(batches).tolist()) == list(range(70))
  dropped = training.shuffled_batches(70, 32, torch.Generator().manual_seed(0), True)
  assert [len(b) for b in dropped] == [32, 32]


def test_multistep_learning_rate_matches_ours(tiny_config, tiny_dataset):
  config = config_lib.resolve(tiny_config(epochs=4, lr_schedule='multistep'))
  run = training.TorchRun(config, tiny_dataset)
  _, learning_rate, _ = config_lib.make_optimizer(config, run.steps_per_epoch)
  ours = np.asarray(learning_rate(np.arange(config.epochs * run.steps_per_epoch)))
  theirs = []
  for _ in ours:
    theirs.append(run.learning_rate)
    run.optimizer.step()  # no gradients: changes nothing
    run.scheduler.step()
  np.testing.assert_allclose(theirs, ours, rtol=1e-6)


def test_evaluation_covers_every_test_example(tiny_config, tiny_dataset):
  config = config_lib.resolve(tiny_config(eval_batch_size=7))  # 30 = 4 x 7 + 2
  run = training.TorchRun(config, tiny_dataset)
  seen = []
  run.model.register_forward_hook(lambda module, inputs, output: seen.append(len(output)))
  run.evaluate()
  assert seen == [7, 7, 7, 7, 2] and sum(seen) == tiny_dataset.num_test


def test_shared_batches_give_the_same_epoch_in_both_frameworks(tiny_config, tiny_dataset):
  """On our batches from our weights, PyTorch's first epoch (two full batches and a
  partial one of 6) matches ours: losses, BatchNorm statistics after the partial batch,
  and the evaluation over the whole test set."""
  config = config_lib.resolve(tiny_config(epochs=1))
  trainer = trainer_lib.Trainer(config, tiny_dataset)
  state = trainer.init_state()
  template = jax.tree.map(np.asarray, {'params': state.params, 'batch_stats': state.batch_stats})
  run = training.TorchRun(config, tiny_dataset, initial_variables=template)
  torch_train = run.train_epoch(whole_run.torch_inputs(trainer.epoch_inputs(1)))
  state, ours = trainer.train_epoch(state, 1, progress=lambda _: None)
  assert torch_train['train_loss'] == pytest.approx(ours['train_loss'], rel=1e-5)
  assert torch_train['train_accuracy'] == pytest.approx(ours['train_accuracy'])
  # float32 round-off after 3 steps: ~1e-4 of each leaf's largest value; statistics over
  # the padded last batch (32 rows, 6 real) would be off by far more.
  theirs = model_trajectory.flatten(run.variables(template)['batch_stats'])
  assert (
    model_trajectory.relative_deviation(model_trajectory.flatten(state.batch_stats), theirs) < 1e-3
  )
  ours_eval, torch_eval = trainer.evaluate(state), run.evaluate()
  assert torch_eval['test_loss'] == pytest.approx(ours_eval['test_loss'], rel=1e-4)
  assert torch_eval['test_error'] == pytest.approx(ours_eval['test_error'])


@pytest.mark.e2e
def test_ours_on_torch_batches_records_each_epoch(tmp_path, tiny_config, tiny_dataset):
  """``--batches torch``: our side, trained on PyTorch's batches, records every epoch with
  its learning rate and p, as a run of our own loop does."""
  config = tiny_config(epochs=1)
  state = whole_run.train_jax_on_torch_batches(
    config, 0, tiny_dataset, str(tmp_path), progress=lambda _: None
  )
  (record,) = runlog.read_metrics(whole_run.run_dir(str(tmp_path), 'jax', 0))
  resolved = config_lib.resolve(config)
  assert record['epoch'] == 1 and record['step'] == int(state.step) == 3
  assert record['learning_rate'] == pytest.approx(resolved.learning_rate)
  assert record['partial'] == pytest.approx(resolved.partial)


@pytest.mark.parametrize(
  'jax_values, torch_values, expected',
  [
    ([90.1, 90.3, 89.9, 90.2, 90.0], [90.0, 90.2, 90.1, 89.9, 90.3], stats.EQUIVALENT),
    ([85.1, 85.3, 84.9, 85.2, 85.0], [90.0, 90.2, 90.1, 89.9, 90.3], stats.DIFFERENT),
    ([84.0, 96.0, 88.0, 93.0, 89.5], [90.0, 90.2, 90.1, 89.9, 90.3], stats.UNDECIDED),
  ],
)
def test_equivalence_verdicts(jax_values, torch_values, expected):
  test = stats.equivalence([jax_values, torch_values], [1, -1], margin=1.0)
  assert test.verdict == expected
  assert test.inner.low > test.outer.low and test.inner.high < test.outer.high
  if expected != stats.UNDECIDED:
    assert test.seeds_needed is None
    return
  # The estimate lies inside the margin: n seeds of the measured means and spreads make
  # it equivalent, n - 1 do not.
  n = test.seeds_needed
  assert n is not None and n > len(jax_values)

  def like(values, k):  # k values of the same mean and sample standard deviation
    z = np.arange(k) - (k - 1) / 2
    return list(np.mean(values) + np.std(values, ddof=1) * z / np.std(z, ddof=1))

  for k, verdict in ((n, stats.EQUIVALENT), (n - 1, stats.UNDECIDED)):
    again = stats.equivalence([like(jax_values, k), like(torch_values, k)], [1, -1], 1.0)
    assert again.verdict == verdict, k


def test_equivalence_rejects_a_bad_margin():
  with pytest.raises(ValueError, match='margin'):
    stats.equivalence([[1.0, 2.0], [1.0, 2.0]], [1, -1], margin=0.0)


def _write_runs(workdir, config, seeds, test_errors):
  """Synthetic complete runs: per framework and seed, two epochs of records."""
  for framework, errors in test_errors.items():
    for seed, error in zip(seeds, errors, strict=True):
      directory = whole_run.run_dir(workdir, framework, seed)
      os.makedirs(directory)
      loop.record_config(
        directory, config_lib.resolve(dataclasses.replace(config, seed=seed)), resuming=False
      )
      for epoch in (1, 2):
        runlog.append_metrics(
          directory,
          {
            'epoch': epoch,
            'step': 3 * epoch,
            'train_loss': 1.0 + 0.001 * seed,
            'train_accuracy': 0.6,
            'train_seconds': 1.0,
            'test_loss': 1.1,
            'test_error': error + 0.01 * (2 - epoch),
            'learning_rate': 0.1,
            'partial': 0.125,
          },
        )


def test_report_of_known_runs(tmp_path, tiny_config):
  config = tiny_config(
    model='wrn16_4', dataset='digits', epochs=2, lr_schedule='multistep', weight_decay=5e-4
  )
  seeds = [0, 1, 2]
  _write_runs(
    str(tmp_path), config, seeds, {'jax': [0.20, 0.21, 0.19], 'torch': [0.10, 0.11, 0.09]}
  )
  text, verdict = whole_run.report(
    str(tmp_path), seeds, final_epochs=1, margin_points=1.0, margin_relative=0.03
  )
  assert verdict == stats.DIFFERENT
  assert '| 2 | 1.0010 ± 0.0010 | 1.0010 ± 0.0010 |' in text
  assert '| test accuracy (%) | 80.00 ± 1.00 | 90.00 ± 1.00 | -10.00 |' in text
  assert '| train loss |' in text and 'equivalent |' in text  # the losses are equal
  with pytest.raises(ValueError, match='final_epochs'):
    whole_run.report(str(tmp_path), seeds, 3, 1.0, 0.03)


def test_command_reports_finished_runs(tmp_path):
  """The command trains nothing when every run is complete, prints the tables and the
  verdict, and writes them to WORKDIR/report.md."""
  settings = {
    **{k: v for k, v in TINY.items() if k != 'seed'},  # --seeds chooses the runs' seeds
    'model': 'wrn16_4',
    'epochs': 2,
    'lr_schedule': 'multistep',
    'weight_decay': 5e-4,
    'learning_rate': 0.1,
    'partial': 0.125,
  }
  config = config_lib.TrainConfig(**settings)
  _write_runs(str(tmp_path), config, [0, 1], {'jax': [0.2, 0.2], 'torch': [0.2, 0.2]})
  flags = [
    '--whole_run',
    f'--workdir={tmp_path}',
    '--seeds=2',
    '--final_epochs=1',
    *(f'--{config_lib.short_name(k)}={v}' for k, v in settings.items()),
  ]
  result = run_python('-m', 'experiments.crosscheck', *flags)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'complete' in result.stdout and 'epoch 1/' not in result.stdout
  assert (
    'wrn16_4 width 0.0625, padam (lr 0.1, weight decay 0.0005, p 0.125), multistep lr'
    in result.stdout
  )
  assert result.stdout.rstrip().splitlines()[-3] == 'verdict: equivalent'
  with open(tmp_path / whole_run.REPORT_FILE, encoding='utf-8') as f:
    assert 'verdict: equivalent' in f.read()


def test_unsupported_settings_are_refused_before_any_work(tmp_path, tiny_config):
  with pytest.raises(ValueError, match='padamw'):
    whole_run.run(tiny_config(optimizer='padamw'), [0], str(tmp_path))
  with pytest.raises(ValueError, match='warmup'):
    whole_run.run(tiny_config(lr_schedule='warmup', lr_start=0.01), [0], str(tmp_path))
  with pytest.raises(ValueError, match='batches'):
    whole_run.run(tiny_config(), [0], str(tmp_path), batches='both')
  assert not os.listdir(tmp_path)


def test_a_workdir_of_other_batches_is_refused(tmp_path, tiny_config):
  whole_run.record_batches(str(tmp_path), 'jax')
  with pytest.raises(ValueError, match="--batches 'jax', not 'own'"):
    whole_run.run(
      tiny_config(), [0], str(tmp_path), batches='own', dataset=data.load_dataset('digits')
    )
