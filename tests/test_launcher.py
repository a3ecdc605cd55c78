"""``python -m experiments.train``: errors, a kill and resume, and what a run writes."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from conftest import TINY_FLAGS as TINY, subprocess_env

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _launch(*args, **kwargs):
  return subprocess.Popen([sys.executable, '-m', 'experiments.train', *args], cwd=ROOT,
                          env=subprocess_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kwargs)


def _run(*args, timeout=300):
  process = _launch(*args)
  output, _ = process.communicate(timeout=timeout)
  return process.returncode, output


def _metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [{k: v for k, v in json.loads(line).items() if k != 'train_seconds'}
            for line in f]


def test_missing_cifar_fails_fast_naming_data_dir(tmp_path):
  start = time.monotonic()
  code, output = _run('--dataset', 'cifar10', '--data_dir', str(tmp_path / 'none'),
                      '--workdir', str(tmp_path / 'run'), timeout=60)
  assert code != 0
  assert time.monotonic() - start < 30
  assert '--data_dir' in output and 'cifar-10-binary.tar.gz' in output


def test_unknown_choice_lists_the_choices(tmp_path):
  code, output = _run('--model', 'resnet50', '--workdir', str(tmp_path), timeout=60)
  assert code != 0
  assert 'resnet18' in output and 'wrn16_4' in output and 'vgg16' in output


def test_killed_run_resumes_to_identical_metrics(tmp_path):
  """SIGKILL after epoch 1's checkpoint, rerun the same command: same metrics."""
  clean, killed = str(tmp_path / 'clean'), str(tmp_path / 'killed')
  code, output = _run(*TINY, '--epochs', '3', '--workdir', clean)
  assert code == 0, output
  assert os.path.exists(os.path.join(clean, 'curves.png'))

  process = _launch(*TINY, '--epochs', '3', '--workdir', killed)
  checkpoint = pathlib.Path(killed, 'checkpoints', '1')
  deadline = time.monotonic() + 240
  while not checkpoint.exists() and process.poll() is None:
    assert time.monotonic() < deadline, 'no checkpoint in time'
    time.sleep(0.2)
  process.send_signal(signal.SIGKILL)
  process.communicate()
  assert len(_metrics(killed)) < 3, 'the run finished before it could be killed'

  code, output = _run(*TINY, '--epochs', '3', '--workdir', killed)
  assert code == 0, output
  assert 'resumed from the checkpoint of epoch' in output
  assert _metrics(killed) == _metrics(clean)


def test_readme_test_command_is_what_ci_runs():
  readme = (ROOT / 'README.md').read_text()
  ci = (ROOT / '.ci' / 'run').read_text()
  command = next(line.strip() for line in ci.splitlines()
                 if 'pytest' in line and not line.lstrip().startswith('#'))
  assert command in readme
