#!/usr/bin/env bash
# End-to-end demo on a fresh machine: sets up .venv with git-ml, then walks through
# datasets in a temporary git repository (no server). Prints each command it runs.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
"$ROOT/scripts/setup-venv.sh"
VENV="${MLGIT_VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
export PATH="$VENV/bin:$PATH"
DEMO="$(mktemp -d "${TMPDIR:-/tmp}/git-ml-demo.XXXXXX")"
trap 'chmod -R u+w "$DEMO" 2>/dev/null; rm -rf "$DEMO"' EXIT
export GIT_CONFIG_NOSYSTEM=1 HOME="$DEMO/home"
mkdir -p "$HOME" "$DEMO/repo"
git config --global user.name "Demo User"
git config --global user.email demo@example.com
git config --global init.defaultBranch main
git config --global advice.detachedHead false
cd "$DEMO/repo"

run() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

run git init -q
run git ml init
printf '\n# generate a small dataset: 200 CSV files and 50 binary files in 10 folders\n'
python3 - <<'PY'
import os, random
random.seed(7)
for i in range(250):
    d = f"data/part{i % 10}"
    os.makedirs(d, exist_ok=True)
    if i < 200:
        rows = "".join(f"{j},{random.random():.5f},{random.randint(0, 9)}\n" for j in range(200))
        open(f"{d}/rows{i}.csv", "w").write("id,x,label\n" + rows)
    else:
        open(f"{d}/blob{i}.bin", "wb").write(os.urandom(20000))
PY
run git ml add data -m "first version"
run git commit -qm "data v1"
run cat data.mlgit
printf '\n# change one file, add one, remove one\n'
echo "0,0.5,1" >> data/part0/rows0.csv
echo "new" > data/NOTES.txt
rm data/part9/blob209.bin
run git ml status
run git ml add data -m "cleaned"
run git commit -qm "data v2"
run git ml diff data~1 data
run git ml show --no-files data
run git ml ls
run git checkout -q HEAD~1
run git ml checkout
run git ml status
run python3 -c "import mlgit; p = mlgit.checkout('data~1'); print(p); print(sorted(x.name for x in p.iterdir()))"
run python3 -c "import mlgit; print(mlgit.open('data', 'part0/rows0.csv').read()[:40])"
printf '\ndemo finished: everything above ran in %s (now removed)\n' "$DEMO"
