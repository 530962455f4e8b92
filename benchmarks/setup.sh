#!/usr/bin/env bash
# Set up the comparison tools for benchmarks/bench_storage.py.
#
#   bash benchmarks/setup.sh            # everything
#   SKIP_GITML=1 bash benchmarks/setup.sh   # only the other tools
#
# Creates benchmarks/.venv with dvc (from PyPI) and git-ml (editable, from the
# repo root), and installs Debian's git-lfs and git-annex with apt-get when
# they are missing. Safe to run again.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv"
PYTHON="${PYTHON:-python3}"

echo "== repo root: $ROOT"

# --- Debian packages -------------------------------------------------------
need_apt=()
command -v git-lfs   >/dev/null 2>&1 || need_apt+=(git-lfs)
command -v git-annex >/dev/null 2>&1 || need_apt+=(git-annex)
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "== apt-get install ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
else
    echo "== git-lfs and git-annex already installed"
fi

# --- venv with dvc ---------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
if ! "$VENV/bin/dvc" version >/dev/null 2>&1; then
    echo "== pip install dvc"
    "$VENV/bin/python" -m pip install -q dvc
fi

# --- git-ml from this repo -------------------------------------------------
if [ "${SKIP_GITML:-0}" != "1" ]; then
    if [ -f "$ROOT/pyproject.toml" ]; then
        echo "== pip install -e $ROOT"
        "$VENV/bin/python" -m pip install -q -e "$ROOT" || \
            echo "!! git-ml did not install; the benchmark will report it as not installed"
    else
        echo "!! $ROOT/pyproject.toml not found; git-ml not installed"
    fi
fi

# git-ml's own .gitignore may not cover the venv: keep it out of git regardless.
if ! git -C "$ROOT" check-ignore -q "$VENV" 2>/dev/null; then
    printf '.venv/\n__pycache__/\n' > "$HERE/.gitignore"
fi

echo
echo "== versions"
git --version
git lfs version 2>/dev/null || echo "git-lfs: not installed"
git annex version 2>/dev/null | head -1 || echo "git-annex: not installed"
"$VENV/bin/dvc" --version 2>/dev/null | sed 's/^/dvc /' || echo "dvc: not installed"
if [ -x "$VENV/bin/git-ml" ]; then echo "git-ml: $VENV/bin/git-ml"; else echo "git-ml: not installed"; fi
echo
echo "Run:  $VENV/bin/python $HERE/bench_storage.py --files 2000 --weights-mib 64"
