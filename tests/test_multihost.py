"""Two processes on localhost (one CPU device each, gloo collectives) as one run."""

import json
import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
from conftest import assert_tensorboard_matches, start_python, subprocess_env

from padam_jax.distributed import hosts

PROCESSES = 2
METRICS = ('train_loss', 'train_accuracy', 'test_loss', 'test_error')


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _launch_processes(flags: list[str]) -> list[subprocess.Popen]:
  """``experiments.train`` as ``PROCESSES`` processes of one run, one device each."""
  env = subprocess_env()
  env['XLA_FLAGS'] = env['XLA_FLAGS'].replace('device_count=2', 'device_count=1')
  assert 'device_count=1' in env['XLA_FLAGS']
  address = f'localhost:{_free_port()}'
  return [
    start_python(
      '-m',
      'experiments.train',
      *flags,
      f'--coordinator_address={address}',
      f'--num_processes={PROCESSES}',
      f'--process_id={i}',
      env=env,
    )
    for i in range(PROCESSES)
  ]


def _finish(processes: list[subprocess.Popen]) -> list[str]:
  outputs = [p.communicate(timeout=300)[0] for p in processes]
  for p, output in zip(processes, outputs, strict=True):
    assert p.returncode == 0, output
  return outputs


def _progress_lines(output: str) -> list[str]:
  return [line for line in output.splitlines() if line.startswith(('epoch ', 'resumed'))]


@pytest.mark.e2e
def test_two_processes_train_as_one_with_two_devices_and_resume_after_a_kill(tmp_path, tiny_run):
  """Killed during epoch 2, then rerun: every epoch equals the one-process run on two
  devices (``tiny_run``), and only process 0 writes files, summaries and progress lines."""
  workdir = tmp_path / 'run'
  flags = [*tiny_run.flags(), f'--workdir={workdir}']
  processes = _launch_processes(flags)
  deadline = time.monotonic() + 300
  while not (workdir / 'checkpoints' / '1').exists():  # the write of epoch 1 has ended
    assert time.monotonic() < deadline and all(p.poll() is None for p in processes), [
      p.communicate()[0] for p in processes
    ]
    time.sleep(0.01)
  for p in processes:
    p.send_signal(signal.SIGKILL)
  killed = [p.communicate()[0] for p in processes]
  assert all(p.returncode == -signal.SIGKILL for p in processes), killed

  outputs = _finish(_launch_processes(flags))
  assert 'resumed from the checkpoint of epoch 1' in outputs[0], outputs[0]
  assert _progress_lines(outputs[0]) and not _progress_lines(outputs[1]), outputs
  with open(workdir / 'metrics.jsonl', encoding='utf-8') as f:
    records = [json.loads(line) for line in f]
  assert [r['epoch'] for r in records] == [1, 2, 3]
  for ours, reference in zip(records, tiny_run.records, strict=True):
    for key in METRICS:  # both split each batch over two devices: the same program
      np.testing.assert_allclose(ours[key], reference[key], rtol=1e-4, err_msg=key)
  assert sorted(os.listdir(workdir)) == [
    '.lock',  # process 0's (padam_jax.rundir.lock)
    'checkpoints',
    'config.json',
    'curves.png',
    'metrics.jsonl',
    'tensorboard',
  ]
  assert_tensorboard_matches(str(workdir), records)


def test_incomplete_multihost_flags_are_refused():
  with pytest.raises(ValueError, match='need --coordinator_address'):
    hosts.initialize(num_processes=2, process_id=0)
  with pytest.raises(ValueError, match=r'--process_id 2 is not in \[0, --num_processes 2\)'):
    hosts.initialize('localhost:1234', num_processes=2, process_id=2)
  hosts.initialize(num_processes=1)  # one process: nothing to join
