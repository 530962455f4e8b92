#!/usr/bin/env bash
# End-to-end demo on a fresh machine: sets up .venv with git-ml, then walks through
# datasets in a temporary git repository (no server). Prints each command it runs.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# MLGIT_DEMO_NO_SETUP=1: use the venv as it is (tests/test_demo.py runs the demo so).
[ -n "${MLGIT_DEMO_NO_SETUP:-}" ] || "$ROOT/scripts/setup-venv.sh"
VENV="${MLGIT_VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
export PATH="$VENV/bin:$PATH"
DEMO="$(mktemp -d "${TMPDIR:-/tmp}/git-ml-demo.XXXXXX")"
trap '[ -z "${BOARD:-}" ] || kill "$BOARD" 2>/dev/null; chmod -R u+w "$DEMO" 2>/dev/null; rm -rf "$DEMO"' EXIT
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
run git checkout -q main
run git ml checkout

printf '\n\033[1m# Part 2: the ML loop (TensorFlow on the CPU)\033[0m\n'
if ! "$VENV/bin/python" -c "import tensorflow" >/dev/null 2>&1; then
    echo "# installing tensorflow-cpu into $VENV (once)"
    "$VENV/bin/python" -m pip install -q "tensorflow-cpu>=2.16" "tensorboard>=2.16"
fi
export TF_CPP_MIN_LOG_LEVEL=3
cat > make_data.py <<'PY'
import os, random
random.seed(3)
def blob(n, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("x1,x2,label\n")
        for _ in range(n):
            label = random.randint(0, 1)
            c = 1.5 if label else -1.5
            f.write(f"{random.gauss(c, 1.2):.4f},{random.gauss(-c, 1.2):.4f},{label}\n")
blob(600, "points/train.csv")
blob(200, "testset/test.csv")
PY
cat > train.py <<'PY'
import keras, tensorflow as tf, mlgit.tf
from mlgit.tf import CheckpointCallback
# The training data straight from its pinned version: CheckpointCallback records which
# version the fit read (no datasets= needed).
rows = mlgit.tf.dataset("points", "train.csv", label_name="label")
rows = rows.map(lambda f, y: (tf.stack([f["x1"], f["x2"]], axis=-1), tf.cast(y, tf.float32)))
train, val = rows.take(450).batch(32), rows.skip(450).batch(32)
samples = next(iter(rows.batch(16)))[0].numpy()
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy",
              metrics=["accuracy"])
model.fit(train, validation_data=val, epochs=4, verbose=0,
          callbacks=[CheckpointCallback("blobs", config={"lr": 0.05}, samples=samples)])
PY
cat > evaluate.py <<'PY'
import json, sys, numpy as np, mlgit, mlgit.tf
rev = sys.argv[1]
rows = np.loadtxt(mlgit.checkout("testset") / "test.csv", delimiter=",", skiprows=1)
model = mlgit.tf.load(rev)
loss, acc = model.evaluate(rows[:, :2], rows[:, 2], verbose=0)
json.dump({"accuracy": round(float(acc), 4), "loss": round(float(loss), 4)}, open("eval.json", "w"))
print(f"{rev}: test accuracy {acc:.3f}")
PY
run python3 make_data.py
run git ml add points testset
run git add make_data.py train.py evaluate.py
run git commit -qm "model code and data"
run python3 train.py
run git ml lineage blobs
printf '\n# the team board: every run in the real TensorBoard (served, asked over HTTP, stopped)\n'
git ml board --port 0 > board.out 2>&1 &
BOARD=$!
for _ in $(seq 150); do grep -q "TensorBoard at" board.out && break; sleep 0.2; done
cat board.out
URL=$(grep -o 'http://[^ ]*/' board.out | head -1)
# TensorBoard loads the runs in the background: ask until they are there (at most 60 s)
run python3 -c "
import json, time, urllib.request
for _ in range(120):
    runs = json.load(urllib.request.urlopen('${URL}data/runs'))
    if any(r.endswith('/train') for r in runs):
        break
    time.sleep(0.5)
print('runs:', sorted(runs))"
kill "$BOARD"; wait "$BOARD" || true; BOARD=
BEST=$(python3 -c "
import mlgit
with mlgit.Repo() as r:
    best = max(r.lineage('blobs'), key=lambda e: e.metrics.get('val_accuracy', 0))
print(best.id)")
printf '\n# best checkpoint by val_accuracy: %s\n' "$BEST"
run python3 evaluate.py "$BEST"
run git ml note add --results eval.json --dataset testset --checkpoint "$BEST"
run git ml promote "$BEST" production --model blobs -m "best val_accuracy, test accuracy in eval.json"
run git ml stages blobs
run python3 evaluate.py blobs
run git ml note add --results eval.json --dataset testset --checkpoint blobs
run git ml log --metric accuracy
run git ml log -n 1
printf '\n# export the best checkpoint for TensorFlow Serving, then check it as a deployment would\n'
run git ml verify "$BEST"
run git ml export "$BEST" serving
run ls serving/blobs/1 serving/blobs/1/assets.extra
(cd / && run git ml verify --export "$DEMO/repo/serving/blobs")
run git ml results --sort accuracy
run git ml results --history --metric accuracy
run python3 -c "import mlgit; print([(s.stage, s.checkpoint[:12]) for s in mlgit.stages('blobs')])"
run python3 -c "import mlgit.tf; m = mlgit.tf.load('$BEST'); print('reloaded', m.name, 'with', m.count_params(), 'parameters; predicts', m.predict(__import__('numpy').array([[2.0, -2.0]]), verbose=0).round(3).tolist())"
printf '\ndemo finished: everything above ran in %s (now removed)\n' "$DEMO"
