"""Shared pytest setup: two host devices, cheap compiles, a compilation cache, the tiny run,
and child Python processes that share the cache (``run_python``, ``start_python``).

Most of the suite's time is XLA compiling small programs. Three things keep it down:
``--xla_backend_optimization_level=0`` (LLVM spends far less time on programs that run
a few steps; the float semantics are unchanged), a persistent compilation cache shared
with the launcher subprocesses, and one tiny training configuration (``tiny_config``)
used by every test of the training loop, the sweep and the launcher, so that its
programs compile once. The README's command runs the first tier in two worker processes
(pytest-xdist, a test file to each in turn): each worker builds its own session fixtures,
and both share the compilation cache (an entry read while the other writes it is a JAX
warning and a compile, as with the launcher subprocesses).
"""

import dataclasses
import glob
import json
import os
import pathlib
import struct
import subprocess
import sys
import tempfile
from typing import Any

import jax
import numpy as np
import pytest

from padam_jax.distributed import hosts

# Before jax creates its CPU client (at the first computation): two host devices and the
# launchers' collective timeouts, so that a loaded machine slows the suite down instead of
# ending it at XLA's default 40 s. The thread pool stays XLA's own (one thread per device or
# core), written out so that the launchers the tests start keep it rather than take their
# larger one: the pool sizes the Eigen pool too, and with it float32 rounding, which the
# float32 tolerances were measured at and the launcher tests compare to the last bit. The
# suite's loops wait for the devices every few calls (``trainer.CALLS_IN_FLIGHT``), which
# keeps them clear of the deadlock the launchers' pool prevents (docs/allreduce_hang.md);
# tests/test_collectives.py checks the launchers' pool.
os.environ.setdefault('XLA_FLAGS', '--xla_backend_optimization_level=0')
os.environ.update(hosts.host_environment(os.environ, device_count=2, threads_per_device=1))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
  """Tests marked ``slow`` run only when ``-m`` names them (``pytest -m slow``), so that
  ``-m "not e2e"`` and ``-m e2e`` pick the suite's two tiers without them."""
  if 'slow' in (config.getoption('markexpr') or ''):
    return
  skip = pytest.mark.skip(reason='slow: run by hand with pytest -m slow')
  for item in items:
    if item.get_closest_marker('slow'):
      item.add_marker(skip)


jax.config.update(
  'jax_compilation_cache_dir',
  os.environ.get(
    'PADAM_TEST_JAX_CACHE', os.path.join(tempfile.gettempdir(), 'padam_jax_test_cache')
  ),
)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)

# The tiny run: 70 training digits at batch 32 (2 full steps and a partial one of 6),
# 30 test digits (one evaluation batch), a 1/16-width ResNet-18. Launcher tests pass the same
# settings as flags (TINY_FLAGS) and so reuse the compiled programs through the cache.
TINY: dict[str, Any] = dict(
  model='resnet18',
  width=0.0625,
  dataset='digits',
  batch_size=32,
  train_size=70,
  test_size=30,
  seed=3,
)
TINY_FLAGS = [f'--{name}={value}' for name, value in TINY.items()]
# The repository, where the child processes of ``run_python`` and ``start_python`` start.
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def tiny_dataset():
  from padam_jax import data

  return data.load_dataset('digits').subset(TINY['train_size'], TINY['test_size'])


@pytest.fixture(scope='session')
def tiny_config():
  """``tiny_config(**overrides)``: the tiny run's ``TrainConfig`` (2 epochs by default)."""
  from padam_jax.training import config as config_lib

  def make(**overrides):
    return config_lib.TrainConfig(**{**TINY, 'epochs': 2, **overrides})

  return make


def subprocess_env() -> dict[str, str]:
  """Environment for launcher subprocesses: the test's devices, XLA flags and cache."""
  return {
    **os.environ,
    'XLA_FLAGS': os.environ['XLA_FLAGS'],
    'JAX_COMPILATION_CACHE_DIR': jax.config.jax_compilation_cache_dir,  # type: ignore[attr-defined]
    'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
  }


def run_python(
  *args: str, env: dict[str, str] | None = None, timeout: float | None = 300
) -> subprocess.CompletedProcess[str]:
  """``python ARGS`` (``-m MODULE ...`` or ``-c CODE ...``) in the repository root, in ``env``
  (default ``subprocess_env()``); returns it finished, its stdout and stderr as text."""
  return subprocess.run(
    [sys.executable, *args],
    cwd=ROOT,
    env=subprocess_env() if env is None else env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )


def start_python(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
  """``python ARGS`` started as ``run_python`` would, its stderr merged into its stdout."""
  return subprocess.Popen(
    [sys.executable, *args],
    cwd=ROOT,
    env=subprocess_env() if env is None else env,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


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
  """3 epochs of the tiny run (checkpoints of epochs 2 and 3), with TensorBoard summaries.

  The fault tests resume copies of it in-process and through the launcher, which
  reuses its compiled programs from the cache and must end with the same records.
  """
  from padam_jax.training import config, loop

  settings = {**TINY, 'epochs': 3}
  workdir = str(tmp_path_factory.mktemp('tiny_run'))
  records = loop.train_and_evaluate(
    config.TrainConfig(**settings), workdir, progress=lambda _: None, tensorboard=True
  )
  return TinyRun(settings, workdir, records)


def read_tensorboard(workdir: str) -> tuple[dict, dict]:
  """What TensorBoard shows of a run's event files, read in its order (by file name).

  Returns ``({tag: {step: value}}`` of the scalars, ``{tag: Summary.Value}`` of the
  others``)``. A ``SessionLog.START`` at step S drops the scalars of steps >= S, as
  TensorBoard does; a torn last record ends a file.
  """
  # Without tensorboardX (the [train] extra; absent on the GPU image) runs write no events:
  # a test that reads them skips here, after its other checks.
  pytest.importorskip('tensorboardX')
  from tensorboardX.proto import event_pb2

  from padam_jax.rundir import summaries

  scalars: dict[str, Any] = {}
  others: dict[str, Any] = {}
  paths = sorted(glob.glob(os.path.join(workdir, summaries.LOGDIR, '*tfevents*')))
  assert paths, f'no event files in {workdir}/{summaries.LOGDIR}'
  for path in paths:
    with open(path, 'rb') as f:
      content = f.read()
    start = 0
    while start + 12 <= len(content):  # length (8 bytes), its crc, data, data crc
      (length,) = struct.unpack_from('<Q', content, start)
      if start + 16 + length > len(content):
        break
      event = event_pb2.Event.FromString(content[start + 12 : start + 12 + length])
      start += 16 + length
      if event.session_log.status == event_pb2.SessionLog.START:
        for points in scalars.values():
          for step in [s for s in points if s >= event.step]:
            del points[step]
      for value in event.summary.value:
        if value.HasField('simple_value'):
          scalars.setdefault(value.tag, {})[event.step] = value.simple_value
        else:
          others[value.tag] = value
  return scalars, others


def assert_tensorboard_matches(workdir: str, records: list) -> None:
  """The run's TensorBoard summaries hold its epoch records, config and progress losses.

  With fewer than ``trainer.PROGRESS_EVERY`` steps per epoch, the one progress report of an
  epoch is at its last step and its loss is the epoch's train loss.
  """
  scalars, others = read_tensorboard(workdir)  # skips without tensorboardX
  from tensorboardX.proto import plugin_hparams_pb2

  from padam_jax.rundir import (
    runlog,
    summaries,
  )

  f32 = lambda value: float(np.float32(value))  # noqa: E731  (scalars are float32)
  for key in (k for k in summaries.EPOCH_KEYS if k in records[0]):  # validation: if recorded
    assert scalars[f'epoch/{key}'] == {r['step']: f32(r[key]) for r in records}, key
  assert scalars[summaries.PROGRESS_TAG] == {r['step']: f32(r['train_loss']) for r in records}
  with open(os.path.join(workdir, runlog.CONFIG_FILE), encoding='utf-8') as f:
    config = json.load(f)
  text = others[f'{summaries.CONFIG_TAG}/text_summary'].tensor.string_val[0].decode()
  assert json.loads(text) == config
  plugin = others['_hparams_/session_start_info'].metadata.plugin_data
  assert plugin.plugin_name == 'hparams'
  start_info = plugin_hparams_pb2.HParamsPluginData.FromString(plugin.content).session_start_info
  values = {k: getattr(v, v.WhichOneof('kind')) for k, v in start_info.hparams.items()}
  expected = summaries.hparams(config)
  assert values == {
    k: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    for k, v in expected.items()
  }
