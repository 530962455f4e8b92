"""Checkpoints with lineage, notes on commits and `git ml log`, end to end."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import git, make_tree, read_tree, run_gitml

import mlgit
from mlgit import errors
from mlgit.format.ids import hex_to_raw


def _setup(root: Path) -> str:
    """A repo with a dataset committed; returns the dataset id."""
    make_tree(root, {"data/train.csv": "x,y\n1,2\n", "train.py": "print('train')\n"})
    run_gitml(root, "add", "data")
    git(root, "add", "train.py")
    git(root, "commit", "-qm", "code and data")
    return (root / "data.mlgit").read_text().split("id: ")[1].split()[0]


def _ckpt_dir(root: Path, name: str, step: int) -> Path:
    d = root.parent / "ckpts" / name
    make_tree(d, {"weights.bin": os.urandom(20_000), "meta.txt": f"step {step}\n"})
    return d


def _note(root: Path, commit: str = "HEAD") -> list[dict[str, Any]]:
    text = git(root, "notes", "--ref", "ml", "show", commit).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_commit_ckpt_records_lineage_and_notes(repo_dir: Path) -> None:
    data_id = _setup(repo_dir)
    head = git(repo_dir, "rev-parse", "HEAD").stdout.strip()
    (repo_dir.parent / "hparams.json").write_text('{"lr": 0.1}\n')
    c1 = _ckpt_dir(repo_dir, "c1", 100)
    id1 = run_gitml(repo_dir, "commit-ckpt", str(c1), "--run", "resnet-a", "--step", "100",
                    "--metric", "loss=0.5", "--metric", "acc=0.8", "--config",
                    str(repo_dir.parent / "hparams.json"), "-m", "first", "-q").stdout.strip()
    c2 = _ckpt_dir(repo_dir, "c2", 200)
    id2 = run_gitml(repo_dir, "commit-ckpt", str(c2), "--run", "resnet-a", "--step", "200",
                    "--metric", "loss=0.3", "-q").stdout.strip()
    show = json.loads(run_gitml(repo_dir, "show", "--json", "resnet-a").stdout)
    assert show["id"] == id2
    assert show["kind"] == "checkpoint"
    assert show["parents"] == [id1]
    meta = show["meta"]
    assert meta["step"] == 200
    assert meta["metrics"] == {"loss": 0.3}
    assert meta["code"] == {"commit": head, "branch": "main", "dirty": False, "diff": None}
    assert meta["datasets"] == [{"name": "data", "id": data_id, "path": "data"}]
    first = json.loads(run_gitml(repo_dir, "show", "--json", id1).stdout)["meta"]
    assert first["config"][0]["name"] == "hparams.json"
    assert "hparams.json" in run_gitml(repo_dir, "show", id1).stdout

    recs = _note(repo_dir)
    assert [(r["type"], r["id"], r["step"]) for r in recs] == [
        ("checkpoint", id1, 100), ("checkpoint", id2, 200)]
    assert recs[0]["metrics"] == {"loss": 0.5, "acc": 0.8}
    assert recs[1]["parent"] == id1
    assert recs[1]["datasets"] == [{"name": "data", "id": data_id}]

    lin = json.loads(run_gitml(repo_dir, "lineage", "--json", "resnet-a").stdout)
    assert [e["id"] for e in lin] == [id2, id1]
    assert read_tree(mlgit.latest_checkpoint("resnet-a", repo=repo_dir)) == read_tree(c2)


def test_fine_tune_from_another_run_and_explicit_datasets(repo_dir: Path) -> None:
    data_id = _setup(repo_dir)
    base = run_gitml(repo_dir, "commit-ckpt", str(_ckpt_dir(repo_dir, "b", 1)), "--run", "base",
                     "-q").stdout.strip()
    make_tree(repo_dir, {"ft/x.txt": "fine-tune data"})
    run_gitml(repo_dir, "add", "ft")
    ft_id = (repo_dir / "ft.mlgit").read_text().split("id: ")[1].split()[0]
    tuned = run_gitml(repo_dir, "commit-ckpt", str(_ckpt_dir(repo_dir, "t", 1)), "--run", "tuned",
                      "--parent", "base", "--dataset", "ft", "-q").stdout.strip()
    lin = json.loads(run_gitml(repo_dir, "lineage", "--json", "tuned").stdout)
    assert [(e["run"], e["id"]) for e in lin] == [("tuned", tuned), ("base", base)]
    assert lin[0]["datasets"] == [{"name": "ft", "id": ft_id}]
    assert lin[1]["datasets"][0]["id"] == data_id
    assert lin[0]["code"]["dirty"] is True  # ft.mlgit and .gitignore are staged, not committed
    human = run_gitml(repo_dir, "lineage", "tuned").stdout
    assert "tuned@" in human
    assert "<- base@" in human


def test_tf_prefix_checkpoint(repo_dir: Path) -> None:
    _setup(repo_dir)
    d = repo_dir.parent / "tfck"
    make_tree(d, {"ckpt-5.index": os.urandom(100), "ckpt-5.data-00000-of-00001": os.urandom(5000),
                  "ckpt-4.index": b"old", "ckpt-4.data-00000-of-00001": b"old",
                  "checkpoint": "model_checkpoint_path: \"ckpt-5\"\n"})
    run_gitml(repo_dir, "commit-ckpt", str(d / "ckpt-5"), "--run", "tf", "--step", "5")
    p = mlgit.latest_checkpoint("tf", repo=repo_dir)
    assert p.name == "ckpt-5"
    assert sorted(x.name for x in p.parent.iterdir()) == ["ckpt-5.data-00000-of-00001",
                                                           "ckpt-5.index"]
    assert (p.parent / "ckpt-5.index").read_bytes() == (d / "ckpt-5.index").read_bytes()
    assert mlgit.checkout("tf", repo=repo_dir) == p


def test_dirty_tree_is_recorded_with_a_diff_digest(repo_dir: Path) -> None:
    _setup(repo_dir)
    (repo_dir / "train.py").write_text("print('changed')\n")
    run_gitml(repo_dir, "commit-ckpt", str(_ckpt_dir(repo_dir, "d", 1)), "--run", "r")
    code = json.loads(run_gitml(repo_dir, "show", "--json", "r").stdout)["meta"]["code"]
    assert code["dirty"] is True
    assert len(code["diff"]) == 32


def _commit_many(args: tuple[str, str, int]) -> list[str]:
    repo, ckdir, n = args
    ids: list[str] = []
    for i in range(n):
        p = Path(ckdir) / f"{os.getpid()}-{i}.bin"
        p.write_bytes(os.urandom(2000))
        ids.append(mlgit.commit_ckpt(p, run="shared", step=i, repo=repo).id)
    return ids


def test_concurrent_commits_to_one_run_lose_nothing(repo_dir: Path) -> None:
    _setup(repo_dir)
    ckdir = repo_dir.parent / "many"
    ckdir.mkdir()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.map(_commit_many, [(str(repo_dir), str(ckdir), 25)] * 4)
    committed = {i for ids in results for i in ids}
    assert len(committed) == 100
    chain = [e["id"] for e in json.loads(run_gitml(repo_dir, "lineage", "--json", "shared").stdout)]
    assert set(chain) == committed
    assert len(chain) == 100
    recs = [r for r in _note(repo_dir) if r["type"] == "checkpoint"]
    assert {r["id"] for r in recs} == committed


def test_log_shows_data_checkpoints_and_best_metric(repo_dir: Path) -> None:
    data_id = _setup(repo_dir)
    git(repo_dir, "commit", "-q", "--allow-empty", "-m", "nothing ml here")
    for step, acc in ((1, 0.7), (2, 0.9)):
        run_gitml(repo_dir, "commit-ckpt", str(_ckpt_dir(repo_dir, f"l{step}", step)),
                  "--run", "r", "--step", str(step), "--metric", f"acc={acc}")
        git(repo_dir, "commit", "-q", "--allow-empty", "-m", f"train {step}")
    (repo_dir / "data/train.csv").write_text("x,y\n9,9\n")
    run_gitml(repo_dir, "add", "data")
    git(repo_dir, "commit", "-qm", "data v2")
    entries = json.loads(run_gitml(repo_dir, "log", "--json").stdout)
    assert [e["summary"] for e in entries] == [
        "data v2", "train 2", "train 1", "nothing ml here", "code and data"]
    assert entries[0]["datasets"][0]["changed"] is True
    assert entries[1]["datasets"][0]["changed"] is False
    assert entries[4]["datasets"][0] == {"path": "data", "name": "data", "kind": "dataset",
                                         "id": data_id, "changed": True}
    # checkpoints are noted on the commit that was HEAD when they were made
    assert [c["step"] for c in entries[2]["checkpoints"]] == [2]
    assert [c["step"] for c in entries[3]["checkpoints"]] == [1]
    table = run_gitml(repo_dir, "log", "--metric", "acc").stdout.splitlines()
    assert "acc" in table[0]
    starred = [line for line in table if "0.9*" in line]
    assert len(starred) == 1
    assert "train 1" in starred[0]
    human = run_gitml(repo_dir, "log").stdout
    assert "checkpoint r@" in human
    assert "(changed)" in human
    assert len(json.loads(run_gitml(repo_dir, "log", "--json", "-n", "2").stdout)) == 2
    rng = json.loads(run_gitml(repo_dir, "log", "--json", "HEAD~2..HEAD").stdout)
    assert [e["summary"] for e in rng] == ["data v2", "train 2"]


def test_hand_written_bad_note_lines_are_reported_and_the_rest_shown(repo_dir: Path) -> None:
    _setup(repo_dir)
    run_gitml(repo_dir, "commit-ckpt", str(_ckpt_dir(repo_dir, "n", 1)), "--run", "r")
    git(repo_dir, "notes", "--ref", "ml", "append", "-m", "this is not json\n[1, 2]")
    p = run_gitml(repo_dir, "note", "show", "--json", check=False)
    assert p.returncode == errors.FormatError.exit_code
    view = json.loads(p.stdout)
    assert [r["type"] for r in view["records"]] == ["checkpoint"]
    assert len(view["problems"]) == 2
    assert [ln.startswith("git-ml: error: note on ") for ln in p.stderr.splitlines()] == [
        True, True]
    p = run_gitml(repo_dir, "log", check=False)
    assert p.returncode == errors.FormatError.exit_code
    assert "checkpoint r@" in p.stdout
    assert "line 3" in p.stderr


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["commit-ckpt", "{nowhere}", "--run", "r"], errors.BadPathError.exit_code,
     "not a file, a directory or a TensorFlow checkpoint prefix"),
    (["commit-ckpt", "{prefix}", "--run", "r"], errors.BadPathError.exit_code, "needs both"),
    (["commit-ckpt", "{ck}", "--run", "r", "--metric", "acc"], errors.UsageError.exit_code,
     "NAME=NUMBER"),
    (["commit-ckpt", "{ck}", "--run", "r", "--metric", "acc=high"], errors.UsageError.exit_code,
     "not a number"),
    (["commit-ckpt", "{ck}", "--run", "r", "--parent", "data"], errors.UsageError.exit_code,
     "is a dataset, not a checkpoint"),
    (["commit-ckpt", "{ck}", "--run", "r", "--dataset", "nosuch"], errors.RevisionError.exit_code,
     "nosuch"),
    (["commit-ckpt", "{ck}", "--run", "bad run"], errors.UsageError.exit_code, "invalid run"),
    (["commit-ckpt", "{ck}", "--run", "r", "--config", "{nowhere}"], errors.BadPathError.exit_code,
     "config file"),
])
def test_bad_checkpoint_input_changes_nothing(repo_dir: Path, args: list[str], code: int,
                                              needle: str) -> None:
    _setup(repo_dir)
    ck = _ckpt_dir(repo_dir, "bad", 1)
    (ck / "only.index").write_bytes(b"x")
    subst = {"{nowhere}": str(repo_dir.parent / "nowhere"), "{ck}": str(ck),
             "{prefix}": str(ck / "only")}
    packs_before = sorted(p.name for p in (repo_dir / ".git/ml/packs").iterdir())
    p = run_gitml(repo_dir, *[subst.get(a, a) for a in args], check=False)
    assert p.returncode == code, p.stderr
    assert needle in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (repo_dir / ".git/ml/refs/checkpoints/r").exists()
    assert git(repo_dir, "notes", "--ref", "ml", "list", check=False).stdout == ""
    assert sorted(p.name for p in (repo_dir / ".git/ml/packs").iterdir()) == packs_before


def test_latest_checkpoint_of_unknown_run(repo_dir: Path) -> None:
    with pytest.raises(errors.RevisionError):
        mlgit.latest_checkpoint("nope", repo=repo_dir)


def test_note_add_results_log_and_graph(repo_dir: Path) -> None:
    _setup(repo_dir)
    make_tree(repo_dir, {"testset/x.csv": "1,2\n"})
    run_gitml(repo_dir, "add", "testset")
    test_id = (repo_dir / "testset.mlgit").read_text().split("id: ")[1].split()[0]
    git(repo_dir, "commit", "-qm", "testset")
    work = repo_dir.parent
    (work / "eval.json").write_text('{"acc": 0.91, "per_class": {"cat": 0.9, "dog": 0.92}}')
    (work / "train.csv").write_text("epoch,loss,acc\n0,0.9,0.5\n1,0.5,0.7\n2,0.6,0.8\n")
    (work / "model.json").write_text(json.dumps(
        {"class_name": "Sequential", "config": {"name": "s", "layers": [
            {"class_name": "InputLayer", "config": {"batch_shape": [None, 4]}},
            {"class_name": "Dense", "config": {"units": 2}}]}}))
    out = run_gitml(repo_dir, "note", "add", "--results", str(work / "eval.json"), "--dataset",
                    "testset", "--log", str(work / "train.csv"), "--graph",
                    str(work / "model.json")).stdout
    assert "results eval.json (json)" in out
    assert "log train.csv (csv)" in out
    recs = {r["type"]: r for r in _note(repo_dir)}
    assert recs["results"]["dataset"] == {"name": "testset", "id": test_id}
    assert recs["results"]["metrics"] == {"acc": 0.91, "per_class/cat": 0.9,
                                          "per_class/dog": 0.92}
    loss = recs["log"]["scalars"]["loss"]
    assert (loss["last"], loss["best"], loss["mode"]) == (0.6, 0.5, "min")
    assert recs["log"]["scalars"]["acc"]["best"] == 0.8
    assert recs["graph"]["format"] == "keras-json"
    # the whole file is an object in the store, named by the record
    with mlgit.Repo(repo_dir) as r:
        entries = r.store.objects.get_tree(hex_to_raw(recs["log"]["object"]))
        assert [e.name for e in entries] == [b"train.csv"]
    table = run_gitml(repo_dir, "log", "--metric", "acc").stdout
    assert "0.91*" in table


def test_note_add_bad_input_changes_nothing(repo_dir: Path) -> None:
    _setup(repo_dir)
    work = repo_dir.parent
    (work / "eval.json").write_text('{"acc": 0.9}')
    (work / "weird.bin").write_bytes(b"\x00\x01\x02binary\xff" * 20)
    cases = [
        (["--results", str(work / "eval.json"), "--dataset", "nosuch"],
         errors.RevisionError.exit_code, "nosuch"),
        (["--log", str(work / "weird.bin")], errors.UsageError.exit_code, "known"),
        (["--graph", str(work / "eval.json")], errors.UsageError.exit_code, "known"),
        (["--results", str(work / "missing.json")], errors.BadPathError.exit_code, "missing"),
        ([], errors.UsageError.exit_code, "nothing to note"),
        (["--results", str(work / "eval.json"), "nosuchcommit"], errors.RevisionError.exit_code,
         "nosuchcommit"),
    ]
    for args, code, needle in cases:
        p = run_gitml(repo_dir, "note", "add", *args, check=False)
        assert p.returncode == code, (args, p.stderr)
        assert needle in p.stderr, (args, p.stderr)
        assert git(repo_dir, "notes", "--ref", "ml", "list", check=False).stdout == ""


def test_two_clones_annotating_one_commit_merge_with_cat_sort_uniq(repo_dir: Path,
                                                                    tmp_path: Path) -> None:
    _setup(repo_dir)
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo_dir), str(other))
    run_gitml(other, "init")
    # Both sides note the same commit independently.
    run_gitml(repo_dir, "commit-ckpt", str(_ckpt_dir(repo_dir, "mine", 1)), "--run", "mine")
    run_gitml(other, "commit-ckpt", str(_ckpt_dir(other, "theirs", 1)), "--run", "theirs")
    git(repo_dir, "fetch", "-q", str(other), "refs/notes/ml:refs/notes/ml-theirs")
    git(repo_dir, "notes", "--ref", "ml", "merge", "-q", "-s", "cat_sort_uniq",
        "refs/notes/ml-theirs")
    runs = sorted(str(r["run"]) for r in _note(repo_dir))
    assert runs == ["mine", "theirs"]
    view = json.loads(run_gitml(repo_dir, "note", "show", "--json").stdout)
    assert view["problems"] == []
