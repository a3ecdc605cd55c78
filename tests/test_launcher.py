"""``python -m experiments.train``: errors, exit statuses, surviving kills and damage."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import (
  ROOT,
  TINY_FLAGS,
  assert_tensorboard_matches,
  run_python,
  start_python,
  subprocess_env,
)

from padam_jax.rundir import checkpoint, lock, runlog

PHASES = ('train', 'eval', 'checkpoint')
# python -c this LIMIT -m MODULE ARGS...: MODULE with files limited to LIMIT bytes (then
# writes fail with EFBIG instead of SIGXFSZ), set in the child instead of by a fork.
_WITH_FILE_LIMIT = (
  'import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); '
  'limit = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); '
  'os.execv(sys.executable, [sys.executable, *sys.argv[2:]])'
)


def _launch(*args, file_limit=None, env=None):
  """Starts the launcher; ``file_limit``: bytes a file may grow to (a larger write fails)."""
  prefix = ['-c', _WITH_FILE_LIMIT, str(file_limit), '-m'] if file_limit else ['-m']
  # the many runs of the fault test reuse the tiny run's compiled programs
  return start_python(*prefix, 'experiments.train', *args, env=env)


def _run(*args, timeout=300, file_limit=None, env=None):
  process = _launch(*args, file_limit=file_limit, env=env)
  output, _ = process.communicate(timeout=timeout)
  return process.returncode, output


def _metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [
      {k: v for k, v in json.loads(line).items() if k not in ('train_seconds', 'crc32')}
      for line in f
    ]


def test_missing_cifar_fails_fast_naming_data_dir(tmp_path):
  start = time.monotonic()
  code, output = _run(
    '--dataset',
    'cifar10',
    '--data_dir',
    str(tmp_path / 'none'),
    '--workdir',
    str(tmp_path / 'run'),
    timeout=60,
  )
  assert code != 0
  assert time.monotonic() - start < 30
  assert '--data_dir' in output and 'cifar-10-binary.tar.gz' in output


def test_unknown_choice_lists_the_choices(tmp_path):
  code, output = _run('--model', 'resnet50', '--workdir', str(tmp_path), timeout=60)
  assert code != 0
  assert 'resnet18' in output and 'wrn16_4' in output and 'vgg16' in output


def _saved_epochs(workdir):
  path = os.path.join(workdir, 'checkpoints')
  return [int(n) for n in os.listdir(path) if n.isdigit()] if os.path.isdir(path) else []


def _reached(phase, epoch, lines, workdir, first_epoch):
  """Whether a run has reached ``phase`` ('train', 'eval', 'checkpoint') of ``epoch`` or later.

  Training of ``first_epoch`` starts after the first line, of a later epoch after the
  previous epoch's summary; evaluation after the epoch's last progress line; the
  checkpoint write when Orbax's temporary directory appears.
  """
  if phase == 'checkpoint':
    return any(
      int(os.path.basename(path).split('.')[0]) >= epoch
      for path in checkpoint.unfinished_writes(workdir)
    )
  pattern = r'epoch (\d+)/\d+:' if phase == 'train' else r'epoch (\d+) step'
  shift = 1 if phase == 'train' else 0
  reached = [int(m.group(1)) + shift for m in (re.match(pattern, x) for x in lines) if m]
  if phase == 'train' and any('steps/epoch' in line for line in lines):
    reached.append(first_epoch)
  return any(e >= epoch for e in reached)


def _read_lines(process, lines):
  def read():
    for line in process.stdout:
      lines.append(line.rstrip('\n'))

  thread = threading.Thread(target=read, daemon=True)
  thread.start()
  return thread


@pytest.mark.e2e
def test_damaged_run_ends_like_an_uninterrupted_one(tmp_path, tiny_run, damage_checkpoint):
  """A failed checkpoint write, 8 SIGKILLs and a damaged checkpoint, each followed by the
  same command: the final metrics equal those of the uninterrupted ``tiny_run``.

  Kills land at pseudo-random moments of start-up, training, evaluation and checkpoint
  writes, chosen by watching the run's output and its checkpoint directory.
  """
  workdir = str(tmp_path / 'run')
  command = [*tiny_run.flags(), f'--workdir={workdir}']
  # Checkpoint files may not exceed 16 kB: Orbax's write of epoch 1 fails (EFBIG).
  code, output = _run(*command, file_limit=16 * 1024)
  assert code == 2, output
  assert output.strip().splitlines()[-1] == (
    f'error: could not write {workdir}/checkpoints/1: File too large; no epoch is saved '
    'yet: lift the file-size limit (ulimit -f) and rerun the same command to continue'
  )
  assert checkpoint.unfinished_writes(workdir)
  outputs = [output]

  # Per epoch: its training, then its checkpoint write; epoch 2's evaluation, and a kill
  # early on. The first launch for epochs 2 and 3 trains the epoch before, so their
  # training is killed warm; epoch 1's in start-up.
  rng = random.Random(0)
  plan = [(e, p) for e in (1, 2, 3) for p in ('train', 'checkpoint')]
  plan.insert(3, (2, 'eval'))
  plan.insert(1, (1, rng.choice(PHASES)))
  delays = {'train': 0.8 * tiny_run.records[1]['train_seconds'], 'eval': 0.1, 'checkpoint': 0.05}
  torn = 0
  for i, (epoch, phase) in enumerate(plan):
    if i == 7:  # checkpoints of epochs 1 and 2 (or 2 and 3) exist: damage the newest
      damage_checkpoint(workdir, max(_saved_epochs(workdir)))
    first_epoch = max(_saved_epochs(workdir), default=0) + 1
    process, lines = _launch(*command), []
    reader = _read_lines(process, lines)
    deadline = time.monotonic() + 120
    while not _reached(phase, epoch, lines, workdir, first_epoch) and process.poll() is None:
      assert time.monotonic() < deadline, f'{phase} of epoch {epoch} not reached in time'
      time.sleep(0.01)
    time.sleep(rng.uniform(0, delays[phase]))
    process.send_signal(signal.SIGKILL)
    code = process.wait()
    reader.join()
    outputs.append('\n'.join(lines))
    assert code == -signal.SIGKILL, outputs[-1]  # neither finished nor failed: killed
    torn += bool(checkpoint.unfinished_writes(workdir))

  code, output = _run(*command)
  outputs.append(output)
  assert code == 0, output
  assert os.path.exists(os.path.join(workdir, 'curves.png'))
  assert _metrics(workdir) == [
    {k: v for k, v in r.items() if k != 'train_seconds'} for r in tiny_run.records
  ]
  assert_tensorboard_matches(workdir, runlog.read_metrics(workdir))  # --tensorboard: default
  assert torn >= 1, 'no kill landed in a checkpoint write'
  assert not checkpoint.unfinished_writes(workdir)
  assert len(os.listdir(os.path.join(workdir, 'checkpoints', 'damaged'))) == 1
  everything = '\n'.join(outputs)
  assert 'unfinished checkpoint write' in everything and 'is unreadable' in everything
  assert 'Traceback' not in everything


def test_diverged_run_exits_with_status_3(tmp_path, tiny_run):
  """Exit statuses: 3 for a diverged run (tests/test_faults.py makes one diverge)."""
  workdir = str(tmp_path / 'run')
  shutil.copytree(tiny_run.workdir, workdir)
  runlog.append_metrics(
    workdir, {**tiny_run.records[-1], 'epoch': 4, 'train_loss': None, 'diverged': True}
  )
  code, output = _run(*tiny_run.flags(epochs=5), f'--workdir={workdir}')
  assert code == 3, output
  assert output.strip() == (
    f'diverged: {workdir} holds a run whose loss became non-finite in epoch 4; the '
    'checkpoint of epoch 3 is kept and the run is not trained further: use a new '
    '--workdir with other settings (e.g. a smaller --lr)'
  )


def test_a_run_directory_that_another_process_trains_in_is_refused_with_status_2(tmp_path):
  """A second start on a locked run directory stops before any training, in one line."""
  workdir = str(tmp_path / 'run')
  with lock.held([workdir]):
    code, output = _run(*TINY_FLAGS, '--epochs=1', f'--workdir={workdir}', timeout=120)
  assert code == 2, output
  assert output.strip() == (
    f'error: another process (pid {os.getpid()}) is training in {workdir}; wait for it to '
    'end or use another --workdir'
  )
  assert not os.path.exists(os.path.join(workdir, runlog.METRICS_FILE))


def _launcher_devices_and_xla_flags(xla_flags):
  """JAX's device count and the ``XLA_FLAGS`` in a launcher's ``main``, given the user's
  flags (the launcher's module imported first, as ``python -m`` does)."""
  code = (
    'import os, jax; from experiments import launch, train; '
    'launch.run(lambda _: print(jax.device_count(), os.environ["XLA_FLAGS"]))'
  )
  result = run_python('-c', code, env={**os.environ, 'XLA_FLAGS': xla_flags})
  assert result.returncode == 0, result.stderr[-2000:]
  devices, *flags = result.stdout.strip().split()
  return int(devices), flags


def test_launchers_set_host_devices_and_collective_timeouts_but_keep_the_users():
  count, terminate, warn = (
    '--xla_force_host_platform_device_count',
    '--xla_cpu_collective_call_terminate_timeout_seconds',
    '--xla_cpu_collective_call_warn_stuck_timeout_seconds',
  )
  devices, defaults = _launcher_devices_and_xla_flags('')
  assert f'{terminate}=600' in defaults and f'{warn}=120' in defaults
  assert f'{count}={devices}' in defaults  # XLA used the count run() set
  devices, given = _launcher_devices_and_xla_flags(f'{count}=3 {terminate}=7')
  assert devices == 3
  assert given == [f'{count}=3', f'{terminate}=7', f'{warn}=120']


@pytest.mark.slow
def test_loaded_machine_ends_like_an_idle_one(tmp_path, tiny_run):
  """The launcher's default host devices (4 on 2 cores) with every core kept busy by other
  processes for the whole run: it completes with the records of the same run unloaded."""
  env = {**subprocess_env(), 'XLA_FLAGS': '--xla_backend_optimization_level=0'}
  command = tiny_run.flags(epochs=2, tensorboard=False)
  idle, loaded = str(tmp_path / 'idle'), str(tmp_path / 'loaded')
  code, output = _run(*command, f'--workdir={idle}', env=env)
  assert code == 0, output
  busy = [
    subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    for _ in range(len(os.sched_getaffinity(0)))
  ]
  try:
    start = time.monotonic()
    code, output = _run(*command, f'--workdir={loaded}', env=env, timeout=900)
    seconds = time.monotonic() - start
  finally:
    for process in busy:
      process.kill()
      process.wait()
  assert code == 0, output
  assert '4 cpu device(s)' in output or len(os.sched_getaffinity(0)) != 2, output
  assert _metrics(loaded) == _metrics(idle)
  print(f'loaded run: {seconds:.1f} s')


def test_readme_test_command_is_what_ci_runs():
  readme = (ROOT / 'README.md').read_text()
  ci = (ROOT / '.ci' / 'run').read_text()
  command = next(
    line.strip()
    for line in ci.splitlines()
    if 'pytest' in line and not line.lstrip().startswith('#')
  )
  assert command in readme
