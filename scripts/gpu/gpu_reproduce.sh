#!/usr/bin/env bash
# The reproduction's Table 2 on one GPU in about 8 minutes, without network: WRN-16-4 at
# full width on all of Fashion-MNIST, Padam, SGDM, Adam and AMSGrad (the reproduction
# preset: constant lr, weight decay 0.005), SEEDS seeds each.
#
#   bash scripts/gpu/gpu_reproduce.sh                        # writes ${OUT:-/tmp/gpu_reproduce}
#   GPU_REPRODUCE_SMOKE=1 bash scripts/gpu/gpu_reproduce.sh  # tiny sizes: end to end on CPU
#
# The four optimizers train at once, one process each (no memory preallocation), each
# process training its seeds as one vmapped program (experiments.reproduce --mode auto).
# The epochs are sized from a timed start: every process trains 2 epochs, then the
# runs resume to as many epochs as the budget (BUDGET_S, default 480 s) leaves room for,
# at the slowest process's second-epoch time. Then figures, Table 2 and the claims table
# are built from the runs' metrics.jsonl (OUT/figures/) and summarised in OUT/report.md.
#
# Data: the four Fashion-MNIST IDX files (gzipped or not), from FASHION_MNIST_DIR, else
# data/fashion-mnist/ in this checkout (copy them there before carrying the checkout to a
# machine without network), else /usr/share/datasets/fashion-mnist (Debian's
# dataset-fashion-mnist).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${OUT:-/tmp/gpu_reproduce}
PYTHON=${PYTHON:-python3}
SEEDS=${SEEDS:-3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's code
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # four processes share the GPU's memory
cd "$ROOT"

DATA=${FASHION_MNIST_DIR:-}
for candidate in "$ROOT/data/fashion-mnist" /usr/share/datasets/fashion-mnist; do
  if [[ -z $DATA && -d $candidate ]]; then DATA=$candidate; fi
done
if [[ -z $DATA ]]; then
  echo "error: no Fashion-MNIST IDX files: set FASHION_MNIST_DIR or copy the four files" \
    "to $ROOT/data/fashion-mnist/" >&2
  exit 2
fi

if [[ ${GPU_REPRODUCE_SMOKE:-0} == 1 ]]; then
  MODE='smoke (tiny sizes on the reduced cpu scale; the numbers mean nothing)'
  SCALE=cpu BUDGET_S=${BUDGET_S:-60} SEEDS=${GPU_REPRODUCE_SEEDS:-2}
else
  MODE='full'
  SCALE=fashion_full BUDGET_S=${BUDGET_S:-480}
fi
OPTIMIZERS=(padam sgdm adam amsgrad)
RUNS="$OUT/runs"
mkdir -p "$OUT"
rm -rf "$RUNS"  # a fresh reproduction: its epochs are sized below

# train EPOCHS: the four optimizers at once, each process's output in OUT/<optimizer>.log.
train() {
  local pids=() code=0 optimizer
  for optimizer in "${OPTIMIZERS[@]}"; do
    "$PYTHON" -m experiments.reproduce --suite table2 --sweep "wrn16_4-$optimizer" \
      --scale "$SCALE" --seeds "$SEEDS" --epochs "$1" --data_dir "$DATA" \
      --workdir "$RUNS" --tensorboard=false >>"$OUT/$optimizer.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || code=$?; done
  return $code
}

start=$SECONDS
echo "[$(date +%T)] $MODE: 2 timed epochs of ${OPTIMIZERS[*]}, $SEEDS seeds, data $DATA" >&2
train 2
probe=$((SECONDS - start))
epochs=$("$PYTHON" - "$RUNS" "$BUDGET_S" "$probe" <<'EOF'
import glob, json, math, os, sys
runs, budget, probe = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
second = []
for path in glob.glob(os.path.join(runs, '*', '*', 'metrics.jsonl')):
  with open(path) as f:
    records = [json.loads(line) for line in f]
  second.append(records[1]['train_seconds'])
epoch = 1.15 * max(second)  # + evaluation
overhead = max(probe - 2 * epoch, 0.0)  # start-up and compilation, paid again on resume
print(max(2, 2 + math.floor((budget - probe - overhead) / epoch)))
EOF
)
echo "[$(date +%T)] 2 epochs in $probe s; resuming to $epochs epochs" >&2
train "$epochs"
trained=$((SECONDS - start))
"$PYTHON" -m experiments.plot --reproduction "$RUNS" --suite table2 \
  --output_dir "$OUT/figures" >"$OUT/plot.log" 2>&1

{
  echo '# Table 2 on one GPU'
  echo
  commit=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); mode: $MODE; commit: $commit"
  if command -v nvidia-smi >/dev/null; then nvidia-smi -L || true; fi
  "$PYTHON" -c 'import jax; print(f"JAX {jax.__version__}, {jax.devices()}")'
  echo
  echo "Scale $SCALE, $SEEDS seeds, $epochs epochs (2 timed in $probe s), trained in" \
    "$trained s of a $BUDGET_S s budget; the four optimizers at once, one process each."
  echo
  cat "$OUT/figures/tables.md"
  echo
  echo '## Claims'
  echo
  cat "$OUT/figures/claims.md"
} >"$OUT/report.md"
cat "$OUT/report.md"
