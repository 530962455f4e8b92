#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: sets up .venv, installs git-ml with its
# test dependencies, then runs ruff, mypy and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh test
VENV="${MLGIT_VENV:-.venv}"
# The TensorFlow tests run on the CPU: the CPU-only build is a quarter of the size of
# the `tensorflow` package that the `mlgit[tensorflow]` extra names (same module).
if ! "$VENV/bin/python" -c "import tensorflow" >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install -q "tensorflow-cpu>=2.16" "tensorboard>=2.16"
fi
"$VENV/bin/ruff" check mlgit tests benchmarks
"$VENV/bin/mypy"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
