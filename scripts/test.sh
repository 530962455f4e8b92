#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: sets up .venv, installs git-ml with its
# test dependencies, then runs ruff, mypy and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# The SSH transport's tests start a real OpenSSH server on 127.0.0.1.
if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            openssh-server openssh-client >/dev/null
    else
        echo "openssh-server is needed for the SSH tests: apt-get install openssh-server" >&2
    fi
fi
# `git ml --help` runs `man git-ml`: tests/test_manpages.py installs git-ml into a fresh
# venv and checks that man finds its pages (and groff, a dependency of man-db, renders them).
if ! command -v man >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            man-db >/dev/null
    else
        echo "man is needed for the man page tests: apt-get install man-db" >&2
    fi
fi
# The board's tests load TensorBoard's page in a headless Chromium (Debian's package).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            chromium >/dev/null
    else
        echo "chromium is needed for the board's page test: apt-get install chromium" >&2
    fi
fi
# tests/test_copies.py makes a loop-mounted XFS (reflink=1) to test reflinks for real
# (as root; skipped elsewhere).
if ! command -v mkfs.xfs >/dev/null 2>&1 && [ ! -x /usr/sbin/mkfs.xfs ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            xfsprogs >/dev/null
    else
        echo "mkfs.xfs is needed for the reflink tests: apt-get install xfsprogs" >&2
    fi
fi
scripts/setup-venv.sh test
VENV="${MLGIT_VENV:-.venv}"
# The TensorFlow tests run on the CPU: the CPU-only build is a quarter of the size of
# the `tensorflow` package that the `mlgit[tensorflow]` extra names (same module).
# TensorBoard and google-crc32c (the `board` extra) come with the `test` extra.
if ! "$VENV/bin/python" -c "import tensorflow" >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install -q "tensorflow-cpu>=2.16" "tensorboard>=2.16" \
        "google-crc32c>=1.5"
fi
"$VENV/bin/ruff" check mlgit tests benchmarks
"$VENV/bin/mypy"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
