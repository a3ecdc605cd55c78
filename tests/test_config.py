"""The configuration defined once: flags, grid axes, the docs' flag table, renamed values."""

import dataclasses
import glob
import json
import pathlib
import shutil

import numpy as np
import pytest
from absl import flags

import padam_jax
from experiments import config_flags
from padam_jax import alias, pages
from padam_jax.rundir import runlog
from padam_jax.training import config as config_lib
from padam_jax.training import loop, sweep

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_docs_flag_table_is_generated_from_the_config():
  """docs/training.md holds ``python -m experiments.config_flags --markdown``."""
  page = (ROOT / 'docs' / 'training.md').read_text()
  block = pages.block(page, 'config-flags', 'docs/training.md')
  assert block == config_flags.markdown_table().strip(), (
    'the flag table in docs/training.md is out of date: replace it with the output of '
    '`python -m experiments.config_flags --markdown`'
  )


def test_every_field_is_a_flag(monkeypatch):
  monkeypatch.setattr(config_flags, '_DEFINED', {})
  flag_values = flags.FlagValues()
  config_flags.define_flags(flag_values=flag_values)
  assert all(config_lib.FIELDS[f].metadata['help'] for f in config_lib.FIELDS)
  assert {config_flags.flag_name(f) for f in config_lib.FIELDS} <= set(flag_values)
  flag_values(
    [
      'prog',
      '--lr=0.05',
      '--b2=0.99',
      '--eps=1e-6',
      '--momentum=0.8',
      '--eval_batch_size=50',
      '--preset=paper',
      '--nodrop_remainder',
      '--train_size=64',
    ]
  )
  assert config_flags.config_from_flags() == config_lib.TrainConfig(
    learning_rate=0.05,
    b2=0.99,
    eps=1e-6,
    momentum=0.8,
    eval_batch_size=50,
    preset='paper',
    train_size=64,
  )
  assert config_flags.explicit_flags() == {
    'lr',
    'b2',
    'eps',
    'momentum',
    'eval_batch_size',
    'preset',
    'drop_remainder',
    'train_size',
  }
  with pytest.raises(flags.IllegalFlagValueError):  # choices come from the field
    flag_values['optimizer'].parse('lamb')
  with pytest.raises(flags.IllegalFlagValueError):
    flag_values['preset'].parse('seed')  # the former name is not offered


def test_a_chosen_few_flags_with_the_programs_defaults(monkeypatch):
  monkeypatch.setattr(config_flags, '_DEFINED', {})
  flag_values = flags.FlagValues()
  config_flags.define_flags(
    ('model', 'width', 'learning_rate'),
    defaults={'model': None, 'width': 0.25},
    unset={'model': 'no model'},
    notes={'width': 'Here: small.'},
    flag_values=flag_values,
  )
  assert set(flag_values) == {'model', 'width', 'lr'}
  assert flag_values['model'].help.endswith('Architecture (default: no model).')
  assert flag_values['width'].help.endswith('Here: small.')
  flag_values(['prog'])
  assert config_flags.field_values() == {'model': None, 'width': 0.25, 'learning_rate': None}


def test_grid_axes_are_the_numeric_fields_by_either_name():
  assert set(config_lib.GRID_AXES) == {
    'learning_rate',
    'lr_start',
    'partial',
    'partial_end',
    'weight_decay',
    'momentum',
    'b1',
    'b2',
    'eps',
    'seed',
  }
  assert sweep.parse_grid(['learning_rate=0.1', 'b2=0.99,0.999', 'seed=1']) == {
    'learning_rate': [0.1],
    'b2': [0.99, 0.999],
    'seed': [1],
  }
  with pytest.raises(config_lib.ConfigError) as error:
    sweep.parse_grid(['lr=0.1', 'learning_rate=0.2'])
  assert error.value.field == 'learning_rate'
  with pytest.raises(sweep.GridError, match='width'):  # shapes the program: not an axis
    sweep.parse_grid(['width=0.5,1'])


@pytest.mark.parametrize(
  'overrides, field',
  [
    (dict(learning_rate=-1.0), 'learning_rate'),
    (dict(b1=1.5), 'b1'),
    (dict(model='resnet50'), 'model'),
    (dict(optimizer='sgdm', partial_end=0.1), 'partial_end'),
    (dict(eval_batch_size=0), 'eval_batch_size'),
    (dict(validation_size=0), 'validation_size'),
  ],
)
def test_config_errors_name_the_field_and_launchers_the_flag(overrides, field):
  with pytest.raises(config_lib.ConfigError) as error:
    config_lib.resolve(config_lib.TrainConfig(**overrides))
  assert error.value.field == field and str(error.value).startswith(f'{field} ')
  described = config_flags.describe(error.value)
  assert described.startswith(f'--{config_flags.flag_name(field)} ') and '\n' not in described


def test_an_optimizer_added_to_the_registry_alone_is_a_config_value_and_a_flag(monkeypatch):
  """An entry of ``alias.REGISTRY`` is all an optimizer needs: choices, default learning
  rates (per preset), the fields it takes and the flag come from it."""
  adam = alias.REGISTRY['adam']
  copy = dataclasses.replace(adam, preset_learning_rates={'paper': 0.05})
  monkeypatch.setitem(alias.REGISTRY, 'adam_copy', copy)
  config = config_lib.resolve(config_lib.TrainConfig(optimizer='adam_copy'))
  assert (config.learning_rate, config.partial) == (adam.learning_rate, None)
  paper = config_lib.resolve(config_lib.TrainConfig(optimizer='adam_copy', preset='paper'))
  assert paper.learning_rate == 0.05
  tx, _, _ = config_lib.make_optimizer(config, steps_per_epoch=1)
  params = np.ones(3, np.float32)
  expected = padam_jax.adam(config.learning_rate, weight_decay=config.weight_decay)
  assert np.array_equal(
    tx.update(params, tx.init(params), params)[0],
    expected.update(params, expected.init(params), params)[0],
  )
  with pytest.raises(config_lib.ConfigError, match='applies only to padam and padamw'):
    config_lib.resolve(config_lib.TrainConfig(optimizer='adam_copy', partial=0.1))
  monkeypatch.setattr(config_flags, '_DEFINED', {})
  flag_values = flags.FlagValues()
  config_flags.define_flags(('optimizer',), flag_values=flag_values)
  flag_values(['prog', '--optimizer=adam_copy'])
  assert config_flags.field_values() == {'optimizer': 'adam_copy'}


def test_unknown_optimizer_lists_the_registered_ones():
  with pytest.raises(config_lib.ConfigError) as error:
    config_lib.resolve(config_lib.TrainConfig(optimizer='lamb'))
  assert error.value.field == 'optimizer'
  assert error.value.problem == f"'lamb' is not one of: {', '.join(sorted(alias.REGISTRY))}"
  assert all(
    set(o.preset_learning_rates) <= set(config_lib.PRESETS) for o in alias.REGISTRY.values()
  )


def test_former_preset_name_is_read_from_records_only(tmp_path):
  with pytest.raises(config_lib.ConfigError, match="'seed' is now called 'reproduction'"):
    config_lib.resolve(config_lib.TrainConfig(preset='seed'))
  recorded = sorted(
    glob.glob(str(ROOT / 'results' / 'cpu*' / '**' / 'config.json'), recursive=True)
  )
  assert recorded
  with open(recorded[0], encoding='utf-8') as f:
    fields = json.load(f)
  assert fields['preset'] == 'seed'
  config = config_lib.resolve(config_lib.TrainConfig(**config_lib.from_record(fields)))
  assert config.preset == 'reproduction' and config.to_dict() == config_lib.from_record(fields)
  shutil.copy(recorded[0], tmp_path / runlog.CONFIG_FILE)
  said = []
  loop.record_config(str(tmp_path), config, resuming=True, report=said.append)
  assert not said
  assert json.loads((tmp_path / runlog.CONFIG_FILE).read_text()) == config.to_dict()
  with pytest.raises(runlog.ConfigMismatchError, match='b2'):  # other fields still count
    loop.record_config(str(tmp_path), dataclasses.replace(config, b2=0.99), resuming=True)


def test_a_resolved_record_is_written_as_it_was_recorded(tmp_path):
  """``config.json`` of every committed run, resolved and written again, is the same text
  (the former preset name aside), so that resumed runs still match their records."""
  recorded = sorted(glob.glob(str(ROOT / 'results' / '**' / 'config.json'), recursive=True))
  assert recorded
  for path in recorded:
    text = pathlib.Path(path).read_text(encoding='utf-8')
    fields = config_lib.from_record(json.loads(text))
    config = config_lib.resolve(config_lib.TrainConfig(**fields))
    assert isinstance(config, config_lib.ResolvedConfig) and config.to_dict() == fields
    loop.record_config(str(tmp_path), config, resuming=False)
    written = (tmp_path / runlog.CONFIG_FILE).read_text(encoding='utf-8')
    expected = text.rstrip('\n').replace('"preset": "seed"', '"preset": "reproduction"')
    assert written == expected + '\n', path  # (the oldest records lack the final newline)


def test_a_run_recorded_before_validation_size_resumes_but_not_with_one(tmp_path):
  """``validation_size`` is in ``config.json`` only when set: a committed record (written
  before the field existed) still resumes, and is refused a validation split, as a run
  with one is refused none."""
  recorded = sorted(glob.glob(str(ROOT / 'results' / '**' / 'config.json'), recursive=True))[-1]
  text = pathlib.Path(recorded).read_text(encoding='utf-8')
  assert 'validation_size' not in text
  config = config_lib.resolve(config_lib.TrainConfig(**config_lib.from_record(json.loads(text))))
  assert config.validation_size is None and 'validation_size' not in config.to_dict()
  shutil.copy(recorded, tmp_path / runlog.CONFIG_FILE)
  said = []
  loop.record_config(str(tmp_path), config, resuming=True, report=said.append)
  assert not said  # not taken for a damaged file
  held_out = dataclasses.replace(config, validation_size=5000)
  with pytest.raises(runlog.ConfigMismatchError, match='validation_size: None -> 5000'):
    loop.record_config(str(tmp_path), held_out, resuming=True, report=said.append)
  loop.record_config(str(tmp_path), held_out, resuming=False)
  assert json.loads((tmp_path / runlog.CONFIG_FILE).read_text())['validation_size'] == 5000
  with pytest.raises(runlog.ConfigMismatchError, match='validation_size: 5000 -> None'):
    loop.record_config(str(tmp_path), config, resuming=True, report=said.append)
  assert not said
