#!/usr/bin/env bash
# optax's own contrib common tests with Padam added (contrib/optax/add_to_optax.py), run in a
# copy of the installed optax in a temporary directory; only the cases that involve Padam run
# (common_tests.py counts them). The installed wheel carries the test files; if it lacks
# optax/contrib/_common_test.py, the same version's sdist from PyPI takes its place.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"

version="$("$python" -c 'import optax; print(optax.__version__)')"
installed="$("$python" -c 'import optax, os; print(os.path.dirname(optax.__file__))')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp -r "$installed" "$work/optax"
find "$work/optax" -name __pycache__ -prune -exec rm -rf {} +
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

"$python" "$here/add_to_optax.py" "$work"
cd "$work"
PYTHONPATH="$work" "$python" "$here/common_tests.py" padam
