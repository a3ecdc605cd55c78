"""Shared pytest setup: two host devices, a compilation cache, quiet TF logging; fixtures."""

import dataclasses
import glob
import os
import tempfile

# Must be set before jax initialises its backends (conftest runs first).
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # noqa: E402  pylint: disable=wrong-import-position
import pytest  # noqa: E402  pylint: disable=wrong-import-position

# The training tests build the same small programs many times: compile each once.
jax.config.update('jax_compilation_cache_dir',
                  os.environ.get('PADAM_TEST_JAX_CACHE',
                                 os.path.join(tempfile.gettempdir(), 'padam_jax_test_cache')))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)


@pytest.fixture
def damage_checkpoint():
  """``damage(workdir, epoch)``: overwrites that checkpoint's data files with 100 bytes."""

  def damage(workdir: str, epoch: int) -> None:
    files = glob.glob(os.path.join(workdir, 'checkpoints', str(epoch), 'default', 'd', '*'))
    assert files, f'no data files in the checkpoint of epoch {epoch}'
    for path in files:
      with open(path, 'wb') as f:
        f.write(bytes(range(100)))

  return damage


@dataclasses.dataclass(frozen=True)
class TinyRun:
  """A finished run trained in-process; ``flags`` make the launcher train the same run."""

  settings: dict
  workdir: str
  records: list

  def flags(self, **overrides) -> list[str]:
    return [f'--{k}={v}' for k, v in {**self.settings, **overrides}.items()]


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory) -> TinyRun:
  """3 epochs of a 44k-parameter ResNet on 512 digits (checkpoints of epochs 2 and 3).

  The fault tests resume copies of it in-process and through the launcher, which
  reuses its compiled programs from the cache and must end with the same records.
  """
  from padam_jax import config, train  # pylint: disable=import-outside-toplevel
  settings = dict(dataset='digits', model='resnet18', width=0.0625, batch_size=256, seed=7,
                  train_subset=512, epochs=3)
  workdir = str(tmp_path_factory.mktemp('tiny_run'))
  records = train.train_and_evaluate(config.TrainConfig(**settings), workdir,
                                     progress=lambda _: None)
  return TinyRun(settings, workdir, records)
