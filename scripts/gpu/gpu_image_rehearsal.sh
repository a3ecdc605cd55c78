#!/usr/bin/env bash
# The GPU image's software, rehearsed on CPU: Python 3.12, jax/jaxlib 0.11.2 (CPU build), the
# flax, optax and orbax-checkpoint releases pip picks for that jax, and NO tensorflow,
# tensorflow-datasets or tensorboardX. Runs from this checkout with PYTHONPATH (nothing
# installed), without network where `unshare` can take it away:
#   1. GPU_CHECK_SMOKE=1 bash scripts/gpu/gpu_check.sh;
#   2. experiments.train on Fashion-MNIST from IDX files copied into OUT (as carried onto the
#      machine), tiny sizes;
#   3. GPU_REPRODUCE_SMOKE=1 bash scripts/gpu/gpu_reproduce.sh, when that script exists.
#
#   bash scripts/gpu/gpu_image_rehearsal.sh   # writes ${OUT:-/tmp/gpu_image_rehearsal}
#
# VENV (default OUT/venv) is reused when it already holds jax 0.11.2. The IDX files come from
# FASHION_MNIST_DIR (default: Debian's dataset-fashion-mnist). REHEARSAL_PARTS picks parts
# (default "gpu_check fashion_mnist gpu_reproduce"). Exits non-zero if a part fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${OUT:-/tmp/gpu_image_rehearsal}
VENV=${VENV:-$OUT/venv}
JAX_VERSION=0.11.2
FASHION_MNIST_DIR=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
mkdir -p "$OUT"

# Python 3.12: PYTHON312, python3.12 on PATH, or a pyenv 3.12.
find_python312() {
  local candidates=("${PYTHON312:-}" "$(command -v python3.12 || true)") py
  if command -v pyenv >/dev/null; then
    candidates+=("$(pyenv root)"/versions/3.12*/bin/python3.12)
  fi
  for py in "${candidates[@]}"; do
    if [[ -n $py && -x $py ]] \
      && "$py" -c 'import sys, venv; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

PY=$VENV/bin/python
if ! [[ -x $PY ]] || [[ $("$PY" -c 'import jax; print(jax.__version__)' 2>/dev/null) != \
    "$JAX_VERSION" ]]; then
  PY312=$(find_python312) || { echo 'no Python 3.12 found: nothing rehearsed' >&2; exit 1; }
  t=$SECONDS
  "$PY312" -m venv --clear "$VENV"
  "$PY" -m pip install -q "jax==$JAX_VERSION" "jaxlib==$JAX_VERSION" flax optax chex \
    orbax-checkpoint absl-py numpy 2> >(grep -v 'is ignored: it is neither' >&2)
  echo "venv built in $((SECONDS - t)) s" >&2
fi
"$PY" -m pip check >&2
"$PY" -I - <<'EOF' >&2  # -I: not this checkout, not PYTHONPATH
import importlib.util
absent = ('tensorflow', 'tensorflow_datasets', 'tensorboardX', 'torch', 'padam_jax')
present = [m for m in absent if importlib.util.find_spec(m)]
assert not present, f'the rehearsal environment must not hold {present}'
EOF

# The rest without network: this script again, in a network namespace of its own.
if [[ -z ${REHEARSAL_NETWORK:-} ]]; then
  if unshare -rn true 2>/dev/null; then
    export REHEARSAL_NETWORK='none (unshare -rn)' OUT VENV
    exec unshare -rn bash "${BASH_SOURCE[0]}"
  fi
  REHEARSAL_NETWORK='NOT isolated (unshare -rn unavailable)'
fi

# Nothing installed: this checkout's code through PYTHONPATH; the venv first on PATH.
export PYTHONPATH=$ROOT PATH=$VENV/bin:$PATH PYTHON=$PY
cd "$ROOT"

source scripts/gpu/parts.sh

# gpu_check.sh reports failed parts in its report but always exits 0: read the report.
gpu_check() {
  OUT=$OUT/gpu_check GPU_CHECK_SMOKE=1 bash scripts/gpu/gpu_check.sh
  ! grep -E '^\| [a-z_0-9-]+ \| (failed|timed out)' "$OUT/gpu_check/report.md"
}

# The IDX files as carried onto the machine: a copy, so no system path is read.
CARRIED=$OUT/fashion-mnist
rm -rf "$CARRIED" && mkdir -p "$CARRIED" && cp "$FASHION_MNIST_DIR"/*-ubyte.gz "$CARRIED/"

fashion_mnist() {
  rm -rf "$OUT/train"
  python -m experiments.train --dataset fashion_mnist --data_dir "$CARRIED" \
    --model resnet18 --width 0.0625 --train_size 256 --test_size 100 --epochs 1 \
    --batch_size 32 --workdir "$OUT/train"
  test -s "$OUT/train/metrics.jsonl"
}

gpu_reproduce() {
  OUT=$OUT/gpu_reproduce FASHION_MNIST_DIR=$CARRIED GPU_REPRODUCE_SMOKE=1 \
    bash scripts/gpu/gpu_reproduce.sh
}

for name in ${REHEARSAL_PARTS:-gpu_check fashion_mnist gpu_reproduce}; do
  if [[ $name == gpu_reproduce && ! -f scripts/gpu/gpu_reproduce.sh ]]; then
    PARTS+=(gpu_reproduce) STATUS[gpu_reproduce]='not present (scripts/gpu/gpu_reproduce.sh)'
    ELAPSED[gpu_reproduce]=-
  else
    run_part "$name" 0 "$name"
  fi
done

{
  echo '# GPU image rehearsal (CPU)'
  echo
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); commit: $(git describe --always --dirty \
    2>/dev/null || echo unknown); network: $REHEARSAL_NETWORK"
  "$PY" -c 'import platform; print("Python", platform.python_version())'
  "$PY" -m pip list 2>/dev/null \
    | awk '$1 ~ /^(jax|jaxlib|flax|optax|chex|orbax-checkpoint|numpy|scipy)$/ {
    printf "%s%s %s", sep, $1, $2; sep = ", " } END { print "" }'
  echo 'absent: tensorflow, tensorflow-datasets, tensorboardX, torch; padam-jax not installed'
  echo
  parts_table
  echo
  echo "Logs: $OUT/*.log"
} >"$OUT/report.md"
cat "$OUT/report.md"
for name in "${PARTS[@]}"; do
  [[ ${STATUS[$name]} == ok || ${STATUS[$name]} == 'not present'* ]] || exit 1
done
