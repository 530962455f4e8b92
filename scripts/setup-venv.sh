#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install git-ml into it.
# Usage: scripts/setup-venv.sh [EXTRAS]   e.g. scripts/setup-venv.sh test
# Prints nothing on success but pip's errors; the venv is at $MLGIT_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MLGIT_VENV:-.venv}"
PY="${PYTHON:-python3}"
if ! command -v git >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq git >/dev/null
    else
        echo "git is required; install it first" >&2; exit 1
    fi
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
# The build backend in the venv too, so that a test can build git-ml's wheel without
# reaching an index (tests/test_manpages.py: --no-build-isolation).
"$VENV/bin/python" -m pip install -q 'setuptools>=68' wheel
EXTRAS="${1:-}"
if [ -n "$EXTRAS" ]; then
    "$VENV/bin/python" -m pip install -q --config-settings editable_mode=compat -e ".[$EXTRAS]"
else
    "$VENV/bin/python" -m pip install -q --config-settings editable_mode=compat -e .
fi
# An editable install does not install data files: link the man pages (man/man1, what
# `pip install .` puts in <prefix>/share/man/man1) so that `git ml --help` works here too.
mkdir -p "$VENV/share/man/man1"
ln -sf "$PWD"/man/man1/*.1 "$VENV/share/man/man1/"
