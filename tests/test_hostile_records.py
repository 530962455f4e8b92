"""Hostile metadata and records (issue 8, classes 3 and 7): typed, bounded decoding.

A teammate (or a remote) controls snapshot bodies and git notes. Snapshots are
built from bytes with ``hostile_bytes`` (never with git-ml's own writer) and
written into the victim's store or into a bare origin's ``ml/`` store that the
victim fetches from; notes are written with the real ``git notes``, locally or
in a teammate's clone whose notes the victim fetches. For every form:

- the command exits with its documented code (7 for bad input, 1 for fsck's
  findings, 0 for hooks, which only warn), never 70 (internal error);
- stderr holds only ``git-ml:`` lines, one ``git-ml: error:`` line per problem;
- ``--json`` output parses with a strict parser (no NaN, no Infinity);
- what is good is still shown (other refs in ``ls``, other records and commits
  in ``log`` and ``note show``), and the victim's own data still passes fsck.

``git ml lineage`` over a 100,000-checkpoint chain prints a few lines per run, in
bounded time and memory, and ``--json`` stays linear in the chain's length.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git, run_gitml
from hostile_bytes import (
    RAW,
    SNAPSHOT,
    Builder,
    Obj,
    RawStore,
    canonical,
    hexid,
    pointer_text,
    snapshot_bytes,
    snapshot_fields,
)

from mlgit.api.events import Events
from mlgit.api.repo import Repo
from mlgit.errors import FormatError
from mlgit.format.limits import MAX_JSON_DEPTH, MAX_NOTE_LEN, MAX_SNAPSHOT_LEN
from mlgit.format.snapshot import decode_snapshot

EXIT_FORMAT = 7
EXIT_INTERNAL = 70
HEX = "0123456789abcdef" * 2  # a well-formed id that names nothing


def _no_constant(name: str) -> Any:
    raise AssertionError(f"--json output holds {name}: not JSON")


def strict_json(text: str) -> Any:
    """Parse as strict JSON: NaN, Infinity and -Infinity are refused."""
    return json.loads(text, parse_constant=_no_constant)


def check_stderr(p: subprocess.CompletedProcess[str], errors: int | None = None) -> list[str]:
    """No traceback, no internal error, only ``git-ml:`` lines; the error lines returned."""
    assert p.returncode != EXIT_INTERNAL, p.stderr
    assert "internal error" not in p.stderr, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.splitlines()
    assert all(line.startswith("git-ml: ") for line in lines), p.stderr
    found = [line for line in lines if line.startswith("git-ml: error: ")]
    if errors is not None:
        assert len(found) == errors, p.stderr
    return found


def fails(p: subprocess.CompletedProcess[str], code: int = EXIT_FORMAT,
          errors: int | None = 1) -> list[str]:
    """The command failed cleanly with ``code`` and ``errors`` one-line errors."""
    assert p.returncode == code, (p.returncode, p.stdout[-2000:], p.stderr)
    return check_stderr(p, errors)


# -- hostile snapshots ----------------------------------------------------------------------

GOOD_META: dict[str, Any] = {
    "step": 1, "metrics": {"acc": 0.5}, "config": [],
    "code": {"commit": "ab" * 20, "branch": "main", "dirty": False, "diff": None},
    "datasets": [{"name": "good", "id": HEX, "path": "good"}],
    "source": {"type": "dir", "path": "ck"}}

# Each form: (kind, top-level fields, meta fields, raw byte patch of the canonical body).
# A raw patch writes what no JSON encoder would (10**400 as a bare number, NaN, 1e400).
Form = tuple[str, dict[str, Any], dict[str, Any], tuple[bytes, bytes] | None]
SNAPSHOT_FORMS: dict[str, Form] = {
    "time-1e20": ("dataset", {"time": 10**20}, {}, None),
    "time-negative": ("dataset", {"time": -1}, {}, None),
    "time-year-10000": ("dataset", {"time": 253402300800}, {}, None),
    "files-2**41": ("dataset", {"files": 2**41}, {}, None),
    "bytes-2**63": ("dataset", {"bytes": 2**63}, {}, None),
    "bytes-1e400": ("dataset", {"bytes": 7}, {}, (b'"bytes":7', b'"bytes":1' + b"0" * 400)),
    "author-escape": ("dataset", {"author": "M \x1b[2J <m@x>"}, {}, None),
    "author-newline": ("dataset", {"author": "M\nX <m@x>"}, {}, None),
    "message-osc": ("dataset", {"message": "\x1b]0;owned\x07"}, {}, None),
    "author-lone-surrogate": ("dataset", {"author": "M"}, {},
                              (b'"author":"M"', b'"author":"\\ud800"')),
    "meta-too-deep": ("dataset", {}, {"x": json.loads("[" * MAX_JSON_DEPTH + "]" *
                                                      MAX_JSON_DEPTH)}, None),
    "meta-nan": ("dataset", {}, {"x": 0}, (b'"x":0', b'"x":NaN')),
    "meta-infinity": ("dataset", {}, {"x": 0}, (b'"x":0', b'"x":-Infinity')),
    "meta-1e400": ("dataset", {}, {"x": 0}, (b'"x":0', b'"x":1e400')),
    "meta-path-int": ("dataset", {}, {"path": 5}, None),
    "too-long": ("dataset", {}, {"pad": "x" * MAX_SNAPSHOT_LEN}, None),
    "config-int": ("checkpoint", {}, {"config": 5}, None),
    "config-str": ("checkpoint", {}, {"config": "hparams.json"}, None),
    "config-item-int": ("checkpoint", {}, {"config": [5]}, None),
    "config-id-not-hex": ("checkpoint", {}, {"config": [{"name": "h", "id": "zz", "size": 1}]},
                          None),
    "config-id-upper": ("checkpoint", {}, {"config": [{"name": "h", "id": HEX.upper(),
                                                       "size": 1}]}, None),
    "config-name-int": ("checkpoint", {}, {"config": [{"name": 1, "id": HEX, "size": 1}]}, None),
    "config-size-negative": ("checkpoint", {}, {"config": [{"name": "h", "id": HEX,
                                                            "size": -1}]}, None),
    "config-size-missing": ("checkpoint", {}, {"config": [{"name": "h", "id": HEX}]}, None),
    "metrics-list": ("checkpoint", {}, {"metrics": [1, 2]}, None),
    "metrics-str-value": ("checkpoint", {}, {"metrics": {"acc": "high"}}, None),
    "metrics-bool-value": ("checkpoint", {}, {"metrics": {"acc": True}}, None),
    "metrics-huge-int": ("checkpoint", {}, {"metrics": {"acc": 10**400}}, None),
    "step-str": ("checkpoint", {}, {"step": "1"}, None),
    "step-negative": ("checkpoint", {}, {"step": -1}, None),
    "step-float": ("checkpoint", {}, {"step": 1.5}, None),
    "code-list": ("checkpoint", {}, {"code": [1]}, None),
    "code-commit-int": ("checkpoint", {}, {"code": {**GOOD_META["code"], "commit": 5}}, None),
    "code-dirty-str": ("checkpoint", {}, {"code": {**GOOD_META["code"], "dirty": "yes"}}, None),
    "code-diff-not-hex": ("checkpoint", {}, {"code": {**GOOD_META["code"], "diff": "zz"}}, None),
    "datasets-int": ("checkpoint", {}, {"datasets": 3}, None),
    "datasets-item-str": ("checkpoint", {}, {"datasets": ["good"]}, None),
    "datasets-no-id": ("checkpoint", {}, {"datasets": [{"name": "good"}]}, None),
    "datasets-id-not-hex": ("checkpoint", {}, {"datasets": [{"name": "good", "id": "x"}]}, None),
    "datasets-path-int": ("checkpoint", {}, {"datasets": [{"name": "g", "id": HEX, "path": 5}]},
                          None),
    "source-str": ("checkpoint", {}, {"source": "ck"}, None),
    "source-type-unknown": ("checkpoint", {}, {"source": {"type": "zip", "path": "p"}}, None),
    "source-no-path": ("checkpoint", {}, {"source": {"type": "dir"}}, None),
    "source-prefix-int": ("checkpoint", {}, {"source": {"type": "tf-prefix", "path": "p",
                                                        "prefix": 5}}, None),
    "source-path-escape": ("checkpoint", {}, {"source": {"type": "dir", "path": "\x1b[8m"}},
                           None),
    "config-name-escape": ("checkpoint", {}, {"config": [{"name": "\x1b[2J", "id": HEX,
                                                          "size": 1}]}, None),
    "metrics-name-escape": ("checkpoint", {}, {"metrics": {"\x1b[31macc": 1}}, None),
}
# One form per field group, for the slower end-to-end runs (remotes, hooks).
REPRESENTATIVE = ["time-1e20", "bytes-1e400", "files-2**41", "author-escape", "meta-nan",
                  "meta-too-deep", "config-int", "config-id-not-hex", "metrics-str-value",
                  "code-list", "datasets-no-id", "source-type-unknown"]


def hostile_snapshot(b: Builder, name: str, form: Form) -> bytes:
    """Add the snapshot of ``form`` (named ``name``) to ``b``; return its raw id."""
    kind, over, meta_over, patch = form
    tree = b.tree([b.file(b"w.bin", b"weights\n")])
    meta = {**(GOOD_META if kind == "checkpoint" else {"path": name}), **meta_over}
    body = canonical(snapshot_fields(name, tree, **{"kind": kind, "files": 1, "bytes": 8,
                                                    "meta": meta, **over}))
    if patch is not None:
        assert patch[0] in body
        body = body.replace(patch[0], patch[1], 1)
    return b.add(snapshot_bytes(body), SNAPSHOT)


def good_objects(b: Builder) -> tuple[bytes, bytes]:
    """A good dataset and a good checkpoint (run ``ok``) in ``b``: their raw ids."""
    data = b.dataset("good", {"a.txt": b"hello\n", "sub/b.txt": b"world\n"})
    tree = b.tree([b.file(b"w.bin", b"good weights\n")])
    ckpt = b.snapshot("ok", tree, kind="checkpoint", files=1, bytes=13, meta=GOOD_META)
    return data, ckpt


def victim_repo(root: Path) -> RawStore:
    """A git repository with a commit and an (empty) git-ml store, as ``git ml init`` makes."""
    root.mkdir(parents=True)
    git(root, "init", "-q")
    git(root, "commit", "-q", "--allow-empty", "-m", "start")
    return RawStore(root / ".git" / "ml")


def ref_kind(form: Form) -> str:
    return "checkpoints" if form[0] == "checkpoint" else "datasets"


@pytest.mark.parametrize("form", SNAPSHOT_FORMS)
def test_snapshot_forms_are_format_errors_naming_the_field(form: str) -> None:
    """The decoder turns every form into a FormatError (no TypeError, OverflowError...)."""
    b = Builder()
    sid = hostile_snapshot(b, "bad", SNAPSHOT_FORMS[form])
    data = next(o.data for o in b.objects if o.type == SNAPSHOT and hexid(o.data) == sid.hex())
    with pytest.raises(FormatError) as exc:
        decode_snapshot(data)
    msg = str(exc.value)
    assert "\n" not in msg, msg
    assert len(msg) < 400, msg
    field = form.split("-")[0]
    named = {"too": "bytes", "meta": "meta" if form != "meta-too-deep" else "nested"}
    assert named.get(field, field) in msg, msg


@pytest.mark.parametrize("form", SNAPSHOT_FORMS)
def test_show_history_lineage_of_a_hostile_snapshot(tmp_path: Path, form: str) -> None:
    """show (and lineage of a checkpoint): one line naming the snapshot, exit 7; history and
    lineage through the API raise a FormatError."""
    store = victim_repo(tmp_path / "victim")
    b = Builder()
    bad = hostile_snapshot(b, "bad", SNAPSHOT_FORMS[form])
    store.write(b.objects)
    store.ref(ref_kind(SNAPSHOT_FORMS[form]), "bad", bad)
    root = store.root.parent.parent
    commands = [["show", "bad"]]
    if SNAPSHOT_FORMS[form][0] == "checkpoint":
        commands.append(["lineage", "--json", "bad"])
    for args in commands:
        p = run_gitml(root, *args, check=False)
        [err] = fails(p)
        assert bad.hex() in err, (args, err)
        assert p.stdout == "", (args, p.stdout)
    with Repo(root) as repo:
        with pytest.raises(FormatError, match=bad.hex()):
            repo.history("bad")
        with pytest.raises(FormatError, match=bad.hex()):
            repo.lineage("bad")


@pytest.mark.parametrize("form", REPRESENTATIVE)
def test_json_commands_of_a_hostile_snapshot(tmp_path: Path, form: str) -> None:
    """show --json, history --json, lineage: exit 7 with one line and nothing on stdout."""
    store = victim_repo(tmp_path / "victim")
    b = Builder()
    bad = hostile_snapshot(b, "bad", SNAPSHOT_FORMS[form])
    store.write(b.objects)
    store.ref(ref_kind(SNAPSHOT_FORMS[form]), "bad", bad)
    root = store.root.parent.parent
    for args in (["show", "--json", "bad"], ["history", "bad"], ["history", "--json", "bad"],
                 ["lineage", "bad"]):
        p = run_gitml(root, *args, check=False)
        if args[0] == "lineage" and SNAPSHOT_FORMS[form][0] == "dataset":
            continue
        [err] = fails(p)
        assert bad.hex() in err, (args, p.stdout, err)
        assert p.stdout == "", (args, p.stdout, err)


def _store_with_every_form(root: Path) -> tuple[RawStore, dict[str, bytes], bytes, bytes]:
    store = victim_repo(root)
    b = Builder()
    good, ok = good_objects(b)
    bad = {form: hostile_snapshot(b, f"bad-{i}", f) for i, (form, f) in
           enumerate(SNAPSHOT_FORMS.items())}
    store.write(b.objects)
    store.ref("datasets", "good", good)
    store.ref("checkpoints", "ok", ok)
    for i, (form, sid) in enumerate(bad.items()):
        store.ref(ref_kind(SNAPSHOT_FORMS[form]), f"bad-{i}", sid)
    return store, bad, good, ok


def _remove_bad_refs(store: RawStore) -> None:
    for kind in ("datasets", "checkpoints"):
        for ref in (store.root / "refs" / kind).glob("bad-*"):
            ref.unlink()


def test_store_wide_commands_report_each_bad_ref_and_go_on(tmp_path: Path) -> None:
    """ls lists the good refs and reports each bad one; fsck reports them; gc keeps the good."""
    store, bad, good, ok = _store_with_every_form(tmp_path / "victim")
    root = store.root.parent.parent
    p = run_gitml(root, "ls", check=False)
    err = fails(p, errors=len(bad))
    assert all("ref " in line for line in err)
    assert "good" in p.stdout
    assert "ok" in p.stdout
    assert "bad-" not in p.stdout
    p = run_gitml(root, "ls", "--json", check=False)
    fails(p, errors=len(bad))
    assert {e["name"] for e in strict_json(p.stdout)} == {"good", "ok"}

    p = run_gitml(root, "fsck", "--json", check=False)
    fails(p, code=1, errors=0)
    report = strict_json(p.stdout)
    flagged = {pr["object"] for pr in report["problems"]}
    assert {sid.hex() for sid in bad.values()} <= flagged

    p = run_gitml(root, "gc", "--prune", "now", check=False)
    check_stderr(p)
    assert p.returncode in (0, EXIT_FORMAT)
    # The victim's own data: intact, and complete once the hostile refs are gone.
    _remove_bad_refs(store)
    run_gitml(root, "fsck")
    path = Path(run_gitml(root, "path", "good").stdout.strip())
    assert (path / "sub" / "b.txt").read_bytes() == b"world\n"
    assert good.hex() in run_gitml(root, "show", "good").stdout
    assert "data    good" in run_gitml(root, "show", ok.hex()).stdout
    assert ok.hex()[:12] in run_gitml(root, "lineage", "ok").stdout


def test_push_of_a_store_holding_hostile_snapshots(tmp_path: Path) -> None:
    """push stops with one line (exit 7) at a snapshot that does not decode; nothing crashes."""
    store, _, _, _ = _store_with_every_form(tmp_path / "victim")
    root = store.root.parent.parent
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(root, "remote", "add", "origin", str(origin))
    p = run_gitml(root, "push", "origin", check=False)
    fails(p)
    _remove_bad_refs(store)
    run_gitml(root, "push", "origin")
    run_gitml(root, "fsck")


def _hostile_origin(tmp_path: Path, form: str, pin: bool = True
                    ) -> tuple[Path, Callable[[], None]]:
    """A bare origin whose store holds a good dataset and a hostile snapshot, and a function
    by which Mallory pushes a commit whose pointer files pin both (called already if ``pin``).
    """
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    store = RawStore(origin / "ml")
    b = Builder()
    good, ok = good_objects(b)
    bad = hostile_snapshot(b, "bad", SNAPSHOT_FORMS[form])
    store.write(b.objects)
    store.ref("datasets", "good", good)
    store.ref("checkpoints", "ok", ok)
    store.ref(ref_kind(SNAPSHOT_FORMS[form]), "bad", bad)
    mallory = tmp_path / "mallory"
    git(tmp_path, "clone", "-q", str(origin), str(mallory))
    git(mallory, "commit", "-q", "--allow-empty", "-m", "start")
    git(mallory, "push", "-q", "origin", "HEAD:main")

    def push_pins() -> None:
        (mallory / "good.mlgit").write_bytes(pointer_text("good", good))
        (mallory / "bad.mlgit").write_bytes(pointer_text("bad", bad, SNAPSHOT_FORMS[form][0]))
        git(mallory, "add", ".")
        git(mallory, "commit", "-qm", "pin the data")
        git(mallory, "push", "-q", "origin", "HEAD:main")

    if pin:
        push_pins()
    return origin, push_pins


@pytest.mark.parametrize("form", REPRESENTATIVE)
def test_fetch_pull_and_ls_from_a_hostile_origin(tmp_path: Path, form: str) -> None:
    """fetch, pull and ls REMOTE fail cleanly (exit 7) and store nothing that fsck refuses."""
    origin, _ = _hostile_origin(tmp_path, form)
    victim = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(origin), str(victim))
    run_gitml(victim, "init")
    for args in (["fetch", "origin"], ["pull"], ["ls", "origin"], ["ls", "origin", "--json"]):
        p = run_gitml(victim, *args, check=False)
        err = fails(p, errors=None)
        assert err, (args, p.stderr)
        if args[-1] == "--json" and p.stdout:
            strict_json(p.stdout)
    run_gitml(victim, "fsck")


@pytest.mark.parametrize("form", REPRESENTATIVE[:6])
def test_git_pull_hooks_only_warn(tmp_path: Path, form: str) -> None:
    """`git pull` runs the post-merge hook: it warns in one line and git's pull succeeds."""
    origin, push_pins = _hostile_origin(tmp_path, form, pin=False)
    victim = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(origin), str(victim))
    run_gitml(victim, "init")  # installs the hooks
    push_pins()
    p = subprocess.run(["git", "pull", "-q"], cwd=victim, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "internal error" not in p.stderr, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    ours = [ln for ln in p.stderr.splitlines() if ln.startswith("git-ml: ")]
    assert ours, p.stderr
    assert all(ln.startswith("git-ml: warning: ") for ln in ours), p.stderr
    assert (victim / "bad.mlgit").exists()
    run_gitml(victim, "fsck")


# -- hostile note records -------------------------------------------------------------------


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


CKPT = {"type": "checkpoint", "v": 1, "id": HEX, "run": "r", "step": 1,
        "metrics": {"acc": 0.5}, "parent": None, "datasets": [{"name": "d", "id": HEX}],
        "dirty": False, "time": 1_700_000_000, "author": "A <a@x>", "message": "m"}
PAYLOAD = {"v": 1, "object": HEX, "name": "f", "format": "json", "size": 1,
           "time": 1_700_000_000}
RESULTS = {**PAYLOAD, "type": "results", "metrics": {"acc": 0.9},
           "dataset": {"name": "t", "id": HEX}}
LOG = {**PAYLOAD, "type": "log", "format": "csv",
       "scalars": {"loss": {"last": 0.5, "best": 0.4, "mode": "min", "count": 3,
                            "last_step": 2}}}
GRAPH = {**PAYLOAD, "type": "graph", "format": "keras-json", "summary": {"layers": 2}}

NOTE_FORMS: dict[str, str] = {
    "not-json": "this is not json",
    "json-list": "[1, 2]",
    "json-string": '"checkpoint"',
    "no-type": _line({"v": 1, "id": HEX}),
    "type-int": _line({"type": 5, "v": 1}),
    "v-missing": _line({k: v for k, v in CKPT.items() if k != "v"}),
    "v-str": _line({**CKPT, "v": "1"}),
    "v-bool": _line({**CKPT, "v": True}),
    "issue-example": '{"type":"results","v":1,"name":"t","dataset":{"name":"x"}}',
    "ckpt-id-missing": _line({k: v for k, v in CKPT.items() if k != "id"}),
    "ckpt-id-not-hex": _line({**CKPT, "id": "z" * 32}),
    "ckpt-id-int": _line({**CKPT, "id": 5}),
    "ckpt-run-missing": _line({k: v for k, v in CKPT.items() if k != "run"}),
    "ckpt-run-bad-name": _line({**CKPT, "run": "a run"}),
    "ckpt-step-str": _line({**CKPT, "step": "1"}),
    "ckpt-metrics-list": _line({**CKPT, "metrics": [0.5]}),
    "ckpt-metrics-str": _line({**CKPT, "metrics": {"acc": "high"}}),
    "ckpt-metrics-nan": _line(CKPT).replace('"acc":0.5', '"acc":NaN'),
    "ckpt-metrics-infinity": _line(CKPT).replace('"acc":0.5', '"acc":Infinity'),
    "ckpt-metrics-1e400": _line(CKPT).replace('"acc":0.5', '"acc":1e400'),
    "ckpt-parent-not-hex": _line({**CKPT, "parent": "zz"}),
    "ckpt-datasets-object": _line({**CKPT, "datasets": {"name": "d", "id": HEX}}),
    "ckpt-datasets-no-id": _line({**CKPT, "datasets": [{"name": "d"}]}),
    "ckpt-dirty-str": _line({**CKPT, "dirty": "yes"}),
    "ckpt-time-1e20": _line({**CKPT, "time": 10**20}),
    "ckpt-author-list": _line({**CKPT, "author": ["A"]}),
    "ckpt-message-escape": _line({**CKPT, "message": "\x1b[2J"}),
    "results-object-missing": _line({k: v for k, v in RESULTS.items() if k != "object"}),
    "results-object-not-hex": _line({**RESULTS, "object": "x" * 32}),
    "results-dataset-list": _line({**RESULTS, "dataset": ["t", HEX]}),
    "results-dataset-id-not-hex": _line({**RESULTS, "dataset": {"name": "t", "id": "zz"}}),
    "results-metrics-str": _line({**RESULTS, "metrics": "acc=0.9"}),
    "results-name-int": _line({**RESULTS, "name": 5}),
    "results-name-escape": _line({**RESULTS, "name": "\x1b]0;x\x07"}),
    "results-metric-name-escape": _line({**RESULTS, "metrics": {"\x9bacc": 1}}),
    "log-scalars-list": _line({**LOG, "scalars": [1]}),
    "log-scalar-number": _line({**LOG, "scalars": {"loss": 0.5}}),
    "log-scalar-last-str": _line({**LOG, "scalars": {"loss": {"last": "x", "best": 1}}}),
    "log-scalar-mode": _line({**LOG, "scalars": {"loss": {"last": 1, "best": 1, "mode": "up"}}}),
    "graph-summary-list": _line({**GRAPH, "summary": ["Dense"]}),
    "graph-format-object": _line({**GRAPH, "format": {"x": 1}}),
    "samples-no-checkpoint": _line({**PAYLOAD, "type": "samples", "format": "npz",
                                    "count": 1, "inputs": [], "outputs": []}),
    "samples-count-mismatch": _line({**PAYLOAD, "type": "samples", "format": "npz",
                                     "checkpoint": HEX, "count": 2, "inputs": [
                                         {"name": "input", "dtype": "float32", "shape": [3]}],
                                     "outputs": [{"name": "o", "dtype": "int8", "shape": [2]}]}),
    "verify-passed-str": _line({"type": "verify", "v": 1, "checkpoint": HEX, "samples": HEX,
                                "passed": "yes", "count": 1, "mismatched": 0, "atol": 0,
                                "rtol": 0}),
    "other-nan": '{"type":"future","v":1,"x":NaN}',
    "other-too-deep": '{"type":"future","v":1,"x":' + "[" * MAX_JSON_DEPTH + "]" *
                      MAX_JSON_DEPTH + "}",
    "other-lone-surrogate": '{"type":"future","v":1,"x":"\\udc80"}',
    "too-long": _line({**CKPT, "message": "x" * (16 << 10)}),
}
CLI_NOTE_FORMS = ["issue-example", "json-list", "ckpt-metrics-nan", "other-too-deep",
                  "too-long", "ckpt-id-not-hex", "log-scalar-last-str"]
GOOD_LINES = [_line(CKPT), _line(RESULTS), _line(LOG), _line(GRAPH),
              '{"type":"future","v":1,"x":[1,{"y":2}]}']


def _note_commit(root: Path, bad: str, message: str) -> str:
    """A commit whose note holds the good lines and, third, ``bad``; its id."""
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    lines = [*GOOD_LINES[:2], bad, *GOOD_LINES[2:]]
    note = root.parent / "note.txt"
    note.write_text("\n".join(lines) + "\n")
    git(root, "notes", "--ref", "ml", "add", "-f", "-F", str(note))
    return git(root, "rev-parse", "HEAD").stdout.strip()


@pytest.mark.parametrize("form", NOTE_FORMS)
def test_note_record_forms_are_problems_naming_commit_and_line(tmp_path: Path,
                                                               form: str) -> None:
    """Every form is one problem naming the commit and line; the good records are kept."""
    victim_repo(tmp_path / "victim")
    root = tmp_path / "victim"
    commit = _note_commit(root, NOTE_FORMS[form], "noted")
    with Repo(root) as repo:
        ev = Events()
        view = repo.show_note(commit, events=ev)
        assert [str(e) for e in ev.problems] == view.problems
        assert len(view.problems) == 1, view.problems
        assert view.problems[0].startswith(f"note on {commit[:12]}, line 3: "), view.problems
        assert [r.type for r in view.records] == ["checkpoint", "results", "log", "graph",
                                                  "future"]
        json.dumps(view.to_json(), allow_nan=False)
        with pytest.raises(FormatError):
            repo.show_note(commit)  # without events, the problem is raised
        [entry] = repo.log(limit=1, events=Events())
        assert entry.problems == view.problems
        assert len(entry.checkpoints) == len(entry.results) == len(entry.logs) == 1


@pytest.mark.parametrize("form", CLI_NOTE_FORMS)
def test_note_show_and_log_of_a_hostile_note(tmp_path: Path, form: str) -> None:
    """note show and log: one error line, exit 7 after the good records, strict --json."""
    victim_repo(tmp_path / "victim")
    root = tmp_path / "victim"
    commit = _note_commit(root, NOTE_FORMS[form], "noted")
    p = run_gitml(root, "note", "show", check=False)
    [err] = fails(p)
    assert f"note on {commit[:12]}, line 3" in err
    assert "checkpoint r@" in p.stdout
    assert "results    f" in p.stdout
    assert "log        f" in p.stdout
    assert "graph      f" in p.stdout
    p = run_gitml(root, "note", "show", "--json", check=False)
    fails(p)
    view = strict_json(p.stdout)
    assert len(view["records"]) == 5
    assert len(view["problems"]) == 1
    for args in (["log"], ["log", "--metric", "acc"], ["log", "--json"]):
        p = run_gitml(root, *args, check=False)
        fails(p)
        assert "noted" in p.stdout, args
        assert "start" in p.stdout, args
    entries = strict_json(p.stdout)
    assert [len(e["checkpoints"]) for e in entries] == [1, 0]


def test_log_over_many_hostile_notes_reports_each_and_shows_every_commit(
        tmp_path: Path) -> None:
    """One commit per form: log names each commit's bad line and shows every commit."""
    victim_repo(tmp_path / "victim")
    root = tmp_path / "victim"
    commits = {form: _note_commit(root, line, f"c-{form}") for form, line in NOTE_FORMS.items()}
    p = run_gitml(root, "log", "--json", check=False)
    err = fails(p, errors=len(NOTE_FORMS))
    entries = strict_json(p.stdout)
    assert len(entries) == len(NOTE_FORMS) + 1
    by_commit = {e["commit"]: e for e in entries}
    for form, c in commits.items():
        assert len(by_commit[c]["problems"]) == 1, form
        assert any(f"note on {c[:12]}, line 3" in line for line in err), form
        assert len(by_commit[c]["checkpoints"]) == 1, form
    p = run_gitml(root, "log", "--metric", "acc", check=False)
    fails(p, errors=len(NOTE_FORMS))
    assert p.stdout.count("0.9") >= len(NOTE_FORMS)
    # fsck and gc read every note's roots: the bad lines do not stop them.
    for args in (["fsck", "--json"], ["gc", "--prune", "now"]):
        p = run_gitml(root, *args, check=False)
        check_stderr(p)
        assert p.returncode in (0, 1, EXIT_FORMAT), (args, p.stderr)
        if args[0] == "fsck":
            strict_json(p.stdout)


def test_results_over_many_hostile_notes_reports_each_and_keeps_the_good_rows(
        tmp_path: Path) -> None:
    """One commit per form: `git ml results` names each bad line, cold and then cached."""
    victim_repo(tmp_path / "victim")
    root = tmp_path / "victim"
    for form, line in NOTE_FORMS.items():
        _note_commit(root, line, f"c-{form}")
    for _ in range(2):
        p = run_gitml(root, "results", "--json", check=False)
        fails(p, errors=len(NOTE_FORMS))
        rows = strict_json(p.stdout)
        # Every commit's good results record measures checkpoint HEX (the one run noted
        # beside it): one row, the same record on every commit counted once.
        assert [(r["checkpoint"], r["run"], r["dataset"]["name"]) for r in rows] == [
            (HEX, "r", "t")]
        p = run_gitml(root, "results", check=False)
        fails(p, errors=len(NOTE_FORMS))
        assert p.stdout.splitlines()[1].split()[2:4] == ["r", "1"]


def test_many_bad_lines_in_one_note_are_reported_in_bounded_lines(tmp_path: Path) -> None:
    """A note of 10,000 bad lines gives a bounded number of error lines, not 10,000."""
    victim_repo(tmp_path / "victim")
    root = tmp_path / "victim"
    git(root, "commit", "-q", "--allow-empty", "-m", "spam")
    note = tmp_path / "note.txt"
    note.write_text(_line(CKPT) + "\n" + "[]\n" * 10_000)
    git(root, "notes", "--ref", "ml", "add", "-f", "-F", str(note))
    p = run_gitml(root, "note", "show", check=False)
    err = fails(p, errors=None)
    assert 2 <= len(err) <= 20
    assert "more malformed lines" in err[-1]
    assert "checkpoint r@" in p.stdout


@pytest.mark.parametrize("form", ["issue-example", "ckpt-metrics-nan", "results-dataset-list"])
def test_hostile_notes_fetched_from_a_teammate(tmp_path: Path, form: str) -> None:
    """Mallory's notes arrive with `git ml fetch` and `git pull`: reported, never a crash."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    RawStore(origin / "ml")  # an (empty) git-ml store there
    mallory = tmp_path / "mallory"
    git(tmp_path, "clone", "-q", str(origin), str(mallory))
    commit = _note_commit(mallory, NOTE_FORMS[form], "noted")
    git(mallory, "push", "-q", "origin", "HEAD:main", "refs/notes/ml:refs/notes/ml")
    victim = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(origin), str(victim))
    run_gitml(victim, "init")
    # The notes come along; fetch brings what their valid records name, and reports
    # each id that neither side holds (Mallory never pushed them), never a crash.
    p = run_gitml(victim, "fetch", check=False)
    assert p.returncode == 7, p.stderr
    assert "notes synced" in p.stdout, p.stderr
    assert all("which neither this store nor origin" in e for e in fails(p, errors=None))
    for args in (["log", "--json"], ["note", "show", "--json", commit]):
        p = run_gitml(victim, *args, check=False)
        [err] = fails(p)
        assert f"note on {commit[:12]}, line 3" in err
        strict_json(p.stdout)
    # A second noted commit arrives through `git pull` (post-merge fetches the notes).
    _note_commit(mallory, NOTE_FORMS[form], "noted again")
    git(mallory, "push", "-q", "origin", "HEAD:main", "+refs/notes/ml:refs/notes/ml")
    p = subprocess.run(["git", "pull", "-q"], cwd=victim, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    p = run_gitml(victim, "log", check=False)
    fails(p, errors=2)
    assert "noted again" in p.stdout
    p = run_gitml(victim, "fsck", "--json", check=False)  # the good records name no objects
    check_stderr(p)
    assert {pr["kind"] for pr in strict_json(p.stdout)["problems"]} == {"missing", "bad-note"}


def _limits(nbytes: int, fsize: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return apply


def _run_limited(root: Path, args: list[str], limit: int, timeout: float = 120,
                 max_output: int = 256 << 20) -> subprocess.CompletedProcess[str]:
    """Run ``git ml ARGS`` under an address-space limit; stdout goes to a file of at most
    ``max_output`` bytes (RLIMIT_FSIZE), so unbounded output fails instead of filling memory."""
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    out = root.parent / f"stdout.{os.getpid()}.txt"
    try:
        with out.open("w") as f:
            p = subprocess.run(["git", "ml", *args], cwd=root, stdout=f, stderr=subprocess.PIPE,
                               text=True, env=env, preexec_fn=_limits(limit, max_output),
                               timeout=timeout)
        return subprocess.CompletedProcess(p.args, p.returncode, out.read_text(), p.stderr)
    finally:
        out.unlink(missing_ok=True)


AS_LIMIT = 512 << 20
"""Address space for one git-ml command: the interpreter, pygit2 and zstd fit in 256 MiB
(measured); a 300 MiB note loaded whole would not fit, let alone its decoded text."""


def test_oversized_note_is_refused_unread(tmp_path: Path) -> None:
    """A note over MAX_NOTE_LEN: one error naming it, never loaded (RLIMIT_AS), others shown."""
    victim_repo(tmp_path / "victim")
    root = tmp_path / "victim"
    good = _note_commit(root, _line(CKPT), "good")
    git(root, "commit", "-q", "--allow-empty", "-m", "huge")
    big = tmp_path / "big.txt"
    line = (_line(CKPT) + "\n").encode()
    with big.open("wb") as f:
        for _ in range((300 << 20) // len(line) + 1):
            f.write(line)
    assert big.stat().st_size > MAX_NOTE_LEN
    git(root, "notes", "--ref", "ml", "add", "-f", "-F", str(big))
    big.unlink()
    huge = git(root, "rev-parse", "HEAD").stdout.strip()
    honest = _run_limited(root, ["note", "show", good], AS_LIMIT)
    assert honest.returncode == 0, honest.stderr
    for args in (["note", "show"], ["note", "show", "--json"], ["log", "--json"]):
        p = _run_limited(root, args, AS_LIMIT)
        [err] = fails(p)
        assert f"note on {huge[:12]}" in err, err
        assert "bytes" in err, err
        if "--json" in args:
            out = strict_json(p.stdout)
            if args[0] == "log":
                assert [len(e["checkpoints"]) for e in out] == [0, 2, 0]
    p = _run_limited(root, ["fsck"], AS_LIMIT)
    check_stderr(p)
    assert p.returncode in (0, 1, EXIT_FORMAT), p.stderr


# -- lineage ------------------------------------------------------------------------------


def _chain(store: RawStore, runs: list[tuple[str, int]], root_parent: str | None = None,
           meta: Callable[[int], dict[str, Any]] | None = None) -> list[str]:
    """Write a first-parent chain of checkpoints (``runs``: (run, count), oldest first).

    Built directly as raw pack entries (no dedup scan), so 100,000 take a few seconds.
    Returns the ids, oldest first; each run's ref names its newest.
    """
    b = Builder()
    tree = b.tree([b.file(b"w.bin", b"weights\n")])
    objs = list(b.objects)
    ids: list[str] = []
    parent = root_parent
    step = 0
    for run, count in runs:
        for _ in range(count):
            m = meta(step) if meta else {**GOOD_META, "step": step,
                                         "metrics": {"loss": 1 / (step + 1)}}
            data = snapshot_bytes(snapshot_fields(run, tree, kind="checkpoint",
                                                  parents=[parent] if parent else [],
                                                  files=1, bytes=8, meta=m))
            objs.append(Obj(data, SNAPSHOT, RAW))
            parent = hexid(data)
            ids.append(parent)
            step += 1
        assert parent is not None
        store.ref("checkpoints", run, parent)
    store.write(objs)
    return ids


def test_lineage_of_a_100000_checkpoint_chain_is_bounded(tmp_path: Path) -> None:
    """A 100,000-step chain: a few lines per run, bounded time and memory; --json complete."""
    store = victim_repo(tmp_path / "victim")
    root = tmp_path / "victim"
    n = 100_000
    ids = _chain(store, [("base", n // 2), ("tuned", n // 2)])
    start = time.monotonic()
    p = _run_limited(root, ["lineage", "tuned"], AS_LIMIT, timeout=300, max_output=1 << 20)
    took = time.monotonic() - start
    assert p.returncode == 0, p.stderr
    assert p.stderr == "", p.stderr
    assert len(p.stdout) < 8192, len(p.stdout)
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"tuned@{ids[-1][:12]}  step {n - 1}")
    assert any(f"{n // 2 - 5} more checkpoints of tuned (steps {n // 2 + 2}\u2013{n - 4})"
               in ln for ln in lines), p.stdout
    assert any(f"more checkpoints of base (steps 2\u2013{n // 2 - 4})" in ln for ln in lines)
    assert f"base@{ids[0][:12]}  step 0" in p.stdout
    assert max(len(ln) for ln in lines) < 200
    assert took < 240, took

    p = run_gitml(root, "lineage", "-n", "7", "tuned")
    assert p.stdout.count("tuned@") == 5, p.stdout
    assert f"2 more checkpoints of tuned (steps {n - 5}\u2013{n - 4})" in p.stdout

    p = _run_limited(root, ["lineage", "--json", "tuned"], AS_LIMIT, timeout=300,
                     max_output=600 * n)
    assert p.returncode == 0, p.stderr
    entries = strict_json(p.stdout)
    assert len(entries) == n
    assert entries[0]["id"] == ids[-1]
    assert entries[-1]["id"] == ids[0]
    # Linear in the chain (max_output = 600 bytes an entry): every entry at one indentation.


def test_lineage_collapses_runs_and_caps_indentation(tmp_path: Path) -> None:
    """Short runs are shown whole; long ones keep 3 + 2 around one line; depth is capped."""
    store = victim_repo(tmp_path / "victim")
    root = tmp_path / "victim"
    runs = [(f"r{i}", 1) for i in range(12)] + [("long", 9), ("short", 5)]
    _chain(store, runs)
    out = run_gitml(root, "lineage", "short").stdout
    lines = out.splitlines()
    assert out.count("short@") == 5
    assert out.count("long@") == 5
    assert out.count("  step ") == 22
    assert "\u2026 4 more checkpoints of long (steps 14\u201317) \u2026" in out
    indents = [len(ln) - len(ln.lstrip(" ")) for ln in lines if "  step " in ln]
    assert max(indents) == 2 * 8
    assert indents[:3] == [0, 2, 4]
    data = strict_json(run_gitml(root, "lineage", "--json", "short").stdout)
    assert [e["run"] for e in data][:6] == ["short"] * 5 + ["long"]
    assert len(data) == 26


def test_lineage_stops_cleanly_at_a_parent_it_cannot_follow(tmp_path: Path) -> None:
    """A parent not in the store, not decodable, or a dataset ends the walk with a note."""
    store = victim_repo(tmp_path / "victim")
    root = tmp_path / "victim"
    _chain(store, [("gone", 2)], root_parent=HEX)
    p = run_gitml(root, "lineage", "gone")
    assert p.stdout.count("gone@") == 2
    assert f"parent {HEX[:12]} is not in this store" in p.stdout
    p = run_gitml(root, "lineage", "--json", "gone")
    assert len(strict_json(p.stdout)) == 2
    assert "not in this store" in p.stderr

    b = Builder()
    bad = hostile_snapshot(b, "bad", SNAPSHOT_FORMS["config-int"])
    ds = b.dataset("data", {"a": b"a"})
    store.write(b.objects)
    _chain(store, [("onbad", 2)], root_parent=bad.hex())
    _chain(store, [("ondata", 1)], root_parent=ds.hex())
    p = run_gitml(root, "lineage", "onbad", check=False)
    [err] = fails(p)
    assert bad.hex() in err
    assert "meta.config" in err
    assert p.stdout.count("onbad@") == 2
    assert "does not decode" in p.stdout
    p = run_gitml(root, "lineage", "--json", "onbad", check=False)
    fails(p)
    assert len(strict_json(p.stdout)) == 2
    p = run_gitml(root, "lineage", "ondata")
    assert "ondata@" in p.stdout
    assert "is a dataset, not a checkpoint" in p.stdout


def test_notes_are_found_in_a_fanned_out_notes_tree(tmp_path: Path) -> None:
    """Past 256 notes git stores them as ab/cdef...: the bounded lookup finds them all."""
    victim_repo(tmp_path / "victim")
    root = tmp_path / "victim"
    n = 300
    stream = []
    for i in range(1, n + 1):
        stream += ["commit refs/heads/many", f"mark :{i}",
                   f"committer T <t@x> {1_700_000_000 + i} +0000", "data 2", f"c{i % 10}"]
        if i > 1:
            stream.append(f"from :{i - 1}")
        stream.append("")
    stream += ["commit refs/notes/ml", "committer T <t@x> 1700000000 +0000", "data 5", "notes"]
    for i in range(1, n + 1):
        line = _line({**CKPT, "step": i})
        stream += [f"N inline :{i}", f"data {len(line)}", line]
    stream.append("")
    p = subprocess.run(["git", "fast-import", "--quiet"], cwd=root, capture_output=True,
                       input="\n".join(stream) + "\n", text=True)
    assert p.returncode == 0, p.stderr
    git(root, "checkout", "-q", "many")
    assert any(len(e.split("\t")[1]) == 2 for e in
               git(root, "ls-tree", "refs/notes/ml").stdout.splitlines())  # fanned out
    entries = strict_json(run_gitml(root, "log", "--json", "-n", str(n)).stdout)
    assert [e["checkpoints"][0]["step"] for e in entries] == list(range(n, 0, -1))
    assert '"step": 7' in run_gitml(root, "note", "show", "--json", "HEAD~293").stdout
