#!/usr/bin/env bash
# Does a run on two processes of one device each equal a one-process run on two devices?
# Trains the same 1-epoch run (ResNet-18 at width 0.125, digits, Padam, seed 4) both ways,
# once with the launchers' default thread pools and once with PJRT_NPROC=4 for both, and
# prints the relative difference of the test loss. Usage: bash scripts/multihost_rounding.sh [OUT]
set -euo pipefail
out=${1:-$(mktemp -d)}
args=(--dataset digits --model resnet18 --width 0.125 --optimizer padam --epochs 1 --seed 4)
port=$((20000 + RANDOM % 20000))
train_one() {  # $1: workdir; the rest: environment assignments
  local dir=$1; shift
  env "$@" XLA_FLAGS=--xla_force_host_platform_device_count=2 \
    python -m experiments.train "${args[@]}" --workdir "$dir" >"$dir.log" 2>&1
}
train_two() {
  local dir=$1; shift
  for i in 0 1; do
    env "$@" XLA_FLAGS=--xla_force_host_platform_device_count=1 \
      python -m experiments.train "${args[@]}" --workdir "$dir" \
      --coordinator_address "localhost:$port" --num_processes 2 --process_id $i \
      >"$dir.$i.log" 2>&1 &
  done
  wait
  port=$((port + 1))
}
for pool in default 4; do
  setting=()
  [[ $pool == default ]] || setting=(PJRT_NPROC=$pool)
  train_one "$out/one_$pool" "${setting[@]}"
  train_two "$out/two_$pool" "${setting[@]}"
done
python3 - "$out" <<'PY'
import json, sys
def test_loss(path):
  records = [json.loads(line) for line in open(f'{path}/metrics.jsonl')]
  return [r for r in records if 'test_loss' in r][-1]['test_loss']
for pool in ('default', '4'):
  one, two = (test_loss(f'{sys.argv[1]}/{layout}_{pool}') for layout in ('one', 'two'))
  print(f'PJRT_NPROC {pool}: test loss one process {one!r}, two processes {two!r}, '
        f'relative difference {abs(one - two) / abs(one):.3g}')
PY
