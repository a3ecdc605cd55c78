#!/usr/bin/env bash
# The GPU check: one command, under 8 minutes on one GPU, no network. Prints Markdown:
#   1. training-step throughput of vgg16, resnet18, wrn16_4 (batch 128) in float32 and
#      bfloat16, with 40 and with 1 train steps per compiled call (benchmarks.bench_train);
#   2. a 2-epoch experiments.train run of resnet18 on the synthetic dataset (random
#      uint8 arrays of CIFAR-10's shapes: throughput only), epoch times and img/s;
#   3. a vmapped grid of K = 4 against its single runs (benchmarks.bench_sweep);
#   4. the optimizer-update benchmark (benchmarks.bench_optimizer).
#
#   bash scripts/gpu/gpu_check.sh                     # from anywhere; writes ${OUT:-/tmp/gpu_check}
#   GPU_CHECK_SMOKE=1 bash scripts/gpu/gpu_check.sh   # tiny sizes: every part end to end on CPU
#
# Each part runs under its own timeout (the sum stays under 8 minutes) and a part that
# fails or times out is reported as such while the others go on. Every log, the training
# run and the report (report.md) stay in OUT.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${OUT:-/tmp/gpu_check}
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's code
cd "$ROOT"
mkdir -p "$OUT"
rm -rf "$OUT/train"  # a fresh run, not a resumed one

MODELS=(vgg16 resnet18 wrn16_4)
DTYPES=(float32 bfloat16)
if [[ ${GPU_CHECK_SMOKE:-0} == 1 ]]; then
  MODE='smoke (tiny sizes; the numbers mean nothing)'
  BATCH=16 CALLS=(4 1)
  BENCH=(--width 0.0625 --batch_size 16 --repeats 1)
  TRAIN=(--width 0.0625 --batch_size 32 --train_size 256 --test_size 100)
  SWEEP=(--width 0.0625 --batch_size 32 --synthetic_train 64 --partials 0.25,0.0625
         --lrs 0.1,0.01)
  OPTIMIZER=(--rounds 2 --iters 2)
  LIMIT_BENCH=600 LIMIT_TRAIN=600 LIMIT_SWEEP=900 LIMIT_OPTIMIZER=300
else
  MODE='full'
  BATCH=128 CALLS=(40 1)
  BENCH=(--width 1.0 --batch_size 128 --repeats 3)
  TRAIN=(--width 1.0 --batch_size 128)
  SWEEP=(--width 1.0 --batch_size 128 --synthetic_train 5120 --partials 0.25,0.0625
         --lrs 0.1,0.01)
  OPTIMIZER=(--rounds 5 --iters 10)
  # 4 x 70 + 70 + 70 + 40 = 460 s, plus about 10 s for the header.
  LIMIT_BENCH=70 LIMIT_TRAIN=70 LIMIT_SWEEP=70 LIMIT_OPTIMIZER=40
fi

source "$(dirname "${BASH_SOURCE[0]}")/parts.sh"

# The lines of a log that match PATTERN, with blank lines around its Markdown tables.
extract() {
  grep -E "$1" "$2" | awk '/^\|/ { if (!table) print ""; table = 1; print; next }
                          { if (table) print ""; table = 0; print }' || true
}

# Failed parts: their status and the end of their log.
failure() {
  [[ ${STATUS[$1]} == ok ]] && return
  printf '\n%s: **%s**; the end of %s:\n\n```\n' "$1" "${STATUS[$1]}" "$OUT/$1.log"
  tail -n 5 "$OUT/$1.log"
  printf '```\n'
}

{
  commit=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); mode: $MODE; commit: $commit"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi -L || true
  else
    echo 'nvidia-smi: not found'
  fi
  "$PYTHON" -c 'import jax
print(f"JAX {jax.__version__}, backend {jax.default_backend()}: {jax.devices()}")' \
    || echo 'jax.devices() failed'
} >"$OUT/header.txt" 2>&1
cat "$OUT/header.txt" >&2

for calls in "${CALLS[@]}"; do  # 40 steps per call first: the accelerators' default
  for dtype in "${DTYPES[@]}"; do
    run_part "bench_train-$dtype-$calls" "$LIMIT_BENCH" "$PYTHON" -m benchmarks.bench_train \
      --models "$(IFS=,; echo "${MODELS[*]}")" --compute_dtype "$dtype" \
      --steps_per_call "$calls" --torch=false "${BENCH[@]}"
  done
done
run_part train "$LIMIT_TRAIN" "$PYTHON" -m experiments.train --dataset synthetic \
  --model resnet18 --epochs 2 --drop_remainder --workdir "$OUT/train" "${TRAIN[@]}"
run_part bench_sweep "$LIMIT_SWEEP" "$PYTHON" -m benchmarks.bench_sweep --model resnet18 \
  --timed_epochs 2 "${SWEEP[@]}"
run_part bench_optimizer "$LIMIT_OPTIMIZER" "$PYTHON" -m benchmarks.bench_optimizer \
  --torch=false "${OPTIMIZER[@]}"

{
  echo '# GPU check'
  echo
  cat "$OUT/header.txt"

  echo
  echo "## 1. Training step, batch $BATCH (benchmarks.bench_train)"
  echo
  echo '| model | dtype | steps per call | img/s | warm-up incl. compile (s) |'
  echo '|---|---|---:|---:|---:|'
  for calls in "${CALLS[@]}"; do
    for dtype in "${DTYPES[@]}"; do
      name="bench_train-$dtype-$calls"
      for model in "${MODELS[@]}"; do
        rate=$(awk -F'|' -v m=" $model " '$2 == m {gsub(/ /, "", $3); print $3}' "$OUT/$name.log")
        warm=$(awk -v m="$model" '$1 == m && $2 == "jax:" && $3 == "warm-up" {print $4}' \
          "$OUT/$name.log")
        echo "| $model | $dtype | $calls | ${rate:-${STATUS[$name]}} | ${warm:--} |"
      done
    done
  done
  for calls in "${CALLS[@]}"; do
    for dtype in "${DTYPES[@]}"; do failure "bench_train-$dtype-$calls"; done
  done

  echo
  echo "## 2. experiments.train: resnet18, 2 epochs of synthetic CIFAR-10-shaped data"
  echo
  echo '| epoch | train seconds | img/s | train loss | test error (%) |'
  echo '|---:|---:|---:|---:|---:|'
  if [[ -f $OUT/train/metrics.jsonl ]]; then
    "$PYTHON" - "$OUT/train" <<'EOF'
import json, os, sys
with open(os.path.join(sys.argv[1], 'config.json')) as f:
  batch = json.load(f)['batch_size']
step = 0
with open(os.path.join(sys.argv[1], 'metrics.jsonl')) as f:
  for r in map(json.loads, f):  # whole batches only (--drop_remainder)
    images, step = (r['step'] - step) * batch, r['step']
    print(f"| {r['epoch']} | {r['train_seconds']:.1f} | {images / r['train_seconds']:.0f} | "
          f"{r['train_loss']:.3f} | {100 * r['test_error']:.1f} |")
EOF
  fi || echo '| - | metrics.jsonl unreadable | | | |'
  echo
  echo 'Epoch 1 includes compilation; the labels are random (test error ~90% is expected).'
  failure train

  echo
  echo '## 3. Vmapped sweep vs single runs (benchmarks.bench_sweep, resnet18)'
  echo
  extract '^(JAX |\||sequential / vmapped)' "$OUT/bench_sweep.log"
  failure bench_sweep

  echo
  echo '## 4. Optimizer update (benchmarks.bench_optimizer)'
  echo
  extract '^(tree:|copy bandwidth|\|)' "$OUT/bench_optimizer.log"
  failure bench_optimizer

  echo
  echo '## Parts'
  echo
  parts_table
  echo
  echo "Logs: $OUT/*.log; the training run: $OUT/train"
} >"$OUT/report.md"
cat "$OUT/report.md"
