"""Training loop: metrics, determinism, exact resume, batches, config errors, sharding."""

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import padam_jax
from padam_jax import config as config_lib
from padam_jax import data, models, runlog, schedules, sharding, train

TIMING_KEYS = ('train_seconds',)


@pytest.fixture(scope='module')
def tiny_dataset():
  """70 training and 30 test digits: 3 steps per epoch at batch 32 (last one of 6)."""
  digits = data.load_dataset('digits')
  return dataclasses.replace(
      digits, train_images=digits.train_images[:70], train_labels=digits.train_labels[:70],
      test_images=digits.test_images[:30], test_labels=digits.test_labels[:30])


def _config(**overrides):
  base = dict(model='resnet18', width=0.0625, dataset='digits', batch_size=32,
              eval_batch_size=20, epochs=2, seed=3)
  return config_lib.TrainConfig(**{**base, **overrides})


def _without_timing(records):
  return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def test_metrics_jsonl_has_one_record_per_epoch(tmp_path, tiny_dataset):
  records = train.train_and_evaluate(_config(), str(tmp_path), dataset=tiny_dataset)
  assert [r['epoch'] for r in records] == [1, 2]
  assert [r['step'] for r in records] == [3, 6]  # the partial batch of 6 is kept
  for r in records:
    assert set(r) == {'epoch', 'step', 'train_loss', 'train_accuracy', 'test_loss',
                      'test_error', 'learning_rate', 'partial', 'train_seconds'}
    assert np.isfinite(r['train_loss']) and 0 <= r['test_error'] <= 1
    assert r['learning_rate'] == 0.1 and r['partial'] == 0.125
  on_disk = [json.loads(line) for line in open(tmp_path / runlog.METRICS_FILE)]
  assert on_disk == records
  assert json.load(open(tmp_path / runlog.CONFIG_FILE))['weight_decay'] == 0.005


def test_same_seed_same_run_and_exact_resume(tmp_path, tiny_dataset):
  """Uninterrupted 3 epochs == 1 epoch, then the same command with --epochs 3."""
  whole = train.train_and_evaluate(_config(epochs=3), str(tmp_path / 'a'),
                                   dataset=tiny_dataset)
  again = train.train_and_evaluate(_config(epochs=3), str(tmp_path / 'b'),
                                   dataset=tiny_dataset)
  assert _without_timing(whole) == _without_timing(again)
  train.train_and_evaluate(_config(epochs=1), str(tmp_path / 'c'), dataset=tiny_dataset)
  resumed = train.train_and_evaluate(_config(epochs=3), str(tmp_path / 'c'),
                                     dataset=tiny_dataset)
  assert _without_timing(resumed) == _without_timing(whole)


def test_resume_drops_records_newer_than_the_checkpoint(tmp_path, tiny_dataset):
  """A kill after writing metrics but before the checkpoint: the epoch is redone."""
  workdir = str(tmp_path)
  first = train.train_and_evaluate(_config(epochs=1), workdir, dataset=tiny_dataset)
  runlog.append_metrics(workdir, {**first[0], 'epoch': 2, 'train_loss': -1.0})
  with open(os.path.join(workdir, runlog.METRICS_FILE), 'a') as f:
    f.write('{"epoch": 3, "torn')  # a write cut short
  records = train.train_and_evaluate(_config(epochs=2), workdir, dataset=tiny_dataset)
  assert [r['epoch'] for r in records] == [1, 2]
  assert records[1]['train_loss'] > 0


def test_resume_with_another_config_is_refused(tmp_path, tiny_dataset):
  train.train_and_evaluate(_config(epochs=1), str(tmp_path), dataset=tiny_dataset)
  with pytest.raises(ValueError, match='learning_rate'):
    train.train_and_evaluate(_config(epochs=2, learning_rate=0.05), str(tmp_path),
                             dataset=tiny_dataset)


def test_more_epochs_refused_when_the_schedule_spans_them(tmp_path, tiny_dataset):
  """multistep boundaries sit at fractions of --epochs: extending would rewrite them."""
  cfg = _config(epochs=1, lr_schedule='multistep')
  train.train_and_evaluate(cfg, str(tmp_path), dataset=tiny_dataset)
  with pytest.raises(runlog.ConfigMismatchError, match='epochs'):
    train.train_and_evaluate(dataclasses.replace(cfg, epochs=2), str(tmp_path),
                             dataset=tiny_dataset)


def test_failed_launch_leaves_the_workdir_usable(tmp_path):
  """A wrong --data_dir fails before writing anything; the corrected rerun may proceed."""
  cfg = _config(dataset='fashion_mnist', data_dir=str(tmp_path / 'missing'))
  with pytest.raises(data.DatasetUnavailableError, match='--data_dir'):
    train.train_and_evaluate(cfg, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')


def test_drop_remainder_and_multistep_schedule(tmp_path, tiny_dataset):
  records = train.train_and_evaluate(
      _config(epochs=4, drop_remainder=True, lr_schedule='multistep', optimizer='sgdm'),
      str(tmp_path), dataset=tiny_dataset)
  assert [r['step'] for r in records] == [2, 4, 6, 8]
  # x0.1 at 50% and 75% of the 8 steps: epochs 3 and 4 start at steps 4 and 6.
  np.testing.assert_allclose([r['learning_rate'] for r in records],
                             [0.1, 0.1, 0.01, 0.001], rtol=1e-6)
  assert all(r['partial'] is None for r in records)


def test_training_learns(tmp_path):
  """Real digits, a narrow ResNet: test error falls well below chance."""
  records = train.train_and_evaluate(
      _config(epochs=5, width=0.125, batch_size=128, eval_batch_size=100),
      str(tmp_path))
  assert min(r['test_error'] for r in records) < 0.5
  assert records[-1]['train_accuracy'] > 0.5
  assert records[-1]['train_loss'] < 0.7 * records[0]['train_loss']


def test_two_devices_match_one(tiny_dataset):
  """Data parallelism over the host devices: one step equals the 1-device step.

  BatchNorm statistics stay global (an all-reduce), so only round-off differs.
  """
  if jax.device_count() < 2:
    pytest.skip('needs 2 devices (conftest forces 2 host devices)')
  one_batch = dataclasses.replace(tiny_dataset, train_images=tiny_dataset.train_images[:32],
                                  train_labels=tiny_dataset.train_labels[:32])
  cfg = config_lib.resolve(_config(epochs=1, batch_size=32))
  outcomes = []
  for devices in (jax.devices()[:1], jax.devices()[:2]):
    trainer = train.Trainer(cfg, one_batch, mesh=sharding.make_mesh(devices))
    state, metrics = trainer.train_epoch(trainer.init_state(), 1, progress=lambda _: None)
    outcomes.append((jax.device_get(state), metrics['train_loss']))
  np.testing.assert_allclose(outcomes[0][1], outcomes[1][1], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(outcomes[0][0]), jax.tree.leaves(outcomes[1][0])):
    assert np.abs(a - b).max() <= 1e-4 * max(np.abs(b).max(), 1e-3)


def test_steps_per_call_scan_matches_single_steps(tiny_dataset):
  cfg = config_lib.resolve(_config(epochs=1, batch_size=16, optimizer='sgdm'))
  losses = []
  for steps_per_call in (1, 2):
    trainer = train.Trainer(cfg, tiny_dataset, steps_per_call=steps_per_call)
    _, metrics = trainer.train_epoch(trainer.init_state(), 1, progress=lambda _: None)
    losses.append(metrics['train_loss'])
  np.testing.assert_allclose(losses[0], losses[1], rtol=1e-3)  # round-off, fused differently


# --- configuration ------------------------------------------------------------

def test_presets_and_per_optimizer_defaults():
  seed = config_lib.resolve(config_lib.TrainConfig(optimizer='adam'))
  assert (seed.learning_rate, seed.weight_decay, seed.epochs, seed.lr_schedule) == (
      1e-3, 0.005, 100, 'constant')
  assert seed.partial is None
  paper = config_lib.resolve(config_lib.TrainConfig(preset='paper'))
  assert (paper.learning_rate, paper.weight_decay, paper.epochs, paper.lr_schedule,
          paper.partial) == (0.1, 5e-4, 200, 'multistep', 0.125)
  explicit = config_lib.resolve(config_lib.TrainConfig(preset='paper', epochs=3,
                                                       weight_decay=0.0))
  assert (explicit.epochs, explicit.weight_decay) == (3, 0.0)


@pytest.mark.parametrize('field, value, message', [
    ('model', 'resnet50', 'resnet18'),
    ('dataset', 'mnist', 'fashion_mnist'),
    ('optimizer', 'lamb', 'padamw'),
    ('preset', 'fast', 'paper'),
    ('lr_schedule', 'cosine', 'multistep'),
    ('epochs', 0, 'epochs'),
    ('partial', 0.7, 'partial'),
    ('weight_decay', -1.0, 'weight_decay'),
    ('learning_rate', -0.1, 'learning_rate'),
])
def test_bad_config_values_name_the_choices(field, value, message):
  with pytest.raises(ValueError, match=message):
    config_lib.resolve(config_lib.TrainConfig(**{field: value}))


def test_partial_only_for_padam():
  with pytest.raises(ValueError, match='padam'):
    config_lib.resolve(config_lib.TrainConfig(optimizer='sgdm', partial=0.25))


def test_partial_schedule_anneals():
  cfg = config_lib.resolve(config_lib.TrainConfig(partial=0.25, partial_end=0.0625,
                                                  epochs=10))
  _, _, partial = config_lib.make_optimizer(cfg, steps_per_epoch=10)
  assert float(partial(0)) == 0.25 and float(partial(100)) == 0.0625
  assert float(partial(50)) == pytest.approx(0.15625)


def test_multistep_boundaries():
  lr = schedules.multistep(0.1, total_steps=200)
  assert [float(lr(s)) for s in (0, 99, 100, 149, 150, 199)] == pytest.approx(
      [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_train_step_vmaps_over_a_hyperparameter_grid(tiny_dataset):
  """K models side by side in one program: states stacked, (p, lr) as arrays."""
  model = models.get_model('resnet18', width=0.0625)
  make_tx = optax.inject_hyperparams(padam_jax.padam)
  grid = {'learning_rate': jnp.asarray([0.1, 0.01]), 'partial': jnp.asarray([0.125, 0.25])}

  def init(learning_rate, partial):
    tx = make_tx(learning_rate=learning_rate, partial=partial)
    return train.init_train_state(model, tx, jax.random.key(0), (32, 32, 3))

  states = jax.vmap(init)(grid['learning_rate'], grid['partial'])
  step = functools.partial(train.train_step, model=model, tx=make_tx(0.1, partial=0.125),
                           mean=tiny_dataset.mean, std=tiny_dataset.std)
  images = jnp.asarray(tiny_dataset.train_images[:16])
  labels = jnp.asarray(tiny_dataset.train_labels[:16])
  batched = jax.jit(jax.vmap(step, in_axes=(0, None, None, None)))
  new_states, sums = batched(states, jax.random.key(1), images, labels)
  assert sums['loss_sum'].shape == (2,)
  for k in range(2):
    single_tx = make_tx(learning_rate=float(grid['learning_rate'][k]),
                        partial=float(grid['partial'][k]))
    single = train.init_train_state(model, single_tx, jax.random.key(0), (32, 32, 3))
    single_step = functools.partial(step, tx=single_tx)
    expected, _ = jax.jit(single_step)(single, jax.random.key(1), images, labels)
    for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x: x[k], new_states.params)),
                    jax.tree.leaves(expected.params)):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)


def test_bfloat16_compute(tmp_path, tiny_dataset):
  """--compute_dtype bfloat16: activations in bf16, params and moments stay float32."""
  records = train.train_and_evaluate(_config(epochs=1, compute_dtype='bfloat16'),
                                     str(tmp_path), dataset=tiny_dataset)
  assert np.isfinite(records[0]['train_loss'])
  trainer = train.Trainer(config_lib.resolve(_config(compute_dtype='bfloat16')),
                          tiny_dataset)
  state = trainer.init_state()
  assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype('float32')}
