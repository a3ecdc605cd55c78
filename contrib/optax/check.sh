#!/usr/bin/env bash
# optax's own contrib tests with Padam added (contrib/optax/add_to_optax.py), run in a copy of
# optax in a temporary directory: the ContribTest cases that involve Padam and the module's
# docstring examples (common_tests.py counts them), the module's own tests (_padam_test.py),
# and, where the copy has optax/contrib/_sharding_test.py, its Padam case.
#
# Usage: bash check.sh [OPTAX_ROOT]
# Without OPTAX_ROOT, the copy is of the installed optax; the wheel carries the test files,
# and if it lacks optax/contrib/_common_test.py the same version's sdist from PyPI takes its
# place. With OPTAX_ROOT, a directory holding optax's sources (a clone, or a `git archive` of
# one commit), its optax/ and docs/ are copied instead, and run with the installed jax.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ $# -gt 0 ]; then
  root="$(cd "$1" && pwd)"
  cp -r "$root/optax" "$work/optax"
  if [ -d "$root/docs" ]; then cp -r "$root/docs" "$work/docs"; fi
else
  version="$("$python" -c 'import optax; print(optax.__version__)')"
  installed="$("$python" -c 'import optax, os; print(os.path.dirname(optax.__file__))')"
  cp -r "$installed" "$work/optax"
  if [ ! -f "$work/optax/contrib/_common_test.py" ]; then
    if ! "$python" -m pip download -q --no-deps --no-binary :all: "optax==$version" \
      -d "$work/sdist" >/dev/null 2>&1; then
      echo "contrib check: optax $version has no contrib/_common_test.py and its sdist could not be downloaded" >&2
      exit 1
    fi
    tar -xzf "$work"/sdist/optax-*.tar.gz -C "$work/sdist"
    rm -rf "$work/optax"
    cp -r "$work"/sdist/optax-*/optax "$work/optax"
  fi
fi
find "$work/optax" -name __pycache__ -prune -exec rm -rf {} +

"$python" "$here/add_to_optax.py" "$work"
cd "$work"
export PYTHONPATH="$work"
"$python" "$here/common_tests.py" padam
# Each in its own process: _padam_test.py turns float64 on and off, and _sharding_test.py
# asks for 8 CPU devices before jax starts.
"$python" -m pytest -q -p no:cacheprovider optax/contrib/_padam_test.py
if [ -f optax/contrib/_sharding_test.py ]; then
  "$python" -m pytest -q -p no:cacheprovider optax/contrib/_sharding_test.py -k padam
fi
