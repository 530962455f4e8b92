#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: sets up .venv, installs git-ml with its
# test dependencies, then runs ruff, mypy and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh test
VENV="${MLGIT_VENV:-.venv}"
"$VENV/bin/ruff" check mlgit tests benchmarks
"$VENV/bin/mypy"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
