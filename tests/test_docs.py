"""The documentation in docs/ agrees with the code it describes.

- docs/exit-codes.md has one table row per error class in ``mlgit.errors.__all__``
  with the class's exit code, names no class that does not exist, and lists the
  exit codes the CLI itself uses with their current values.
- docs/cli.md documents every command and option, and its JSON schemas list exactly
  the fields the ``to_json`` methods produce.
- docs/format.md states the constants a reader of the format needs.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import click
import pytest

import mlgit.errors as errors_mod
from mlgit.api.board import BoardResult
from mlgit.api.checkpoints import LineageEntry
from mlgit.api.history import LogEntry
from mlgit.api.imports import ImportResult
from mlgit.api.inspect import FileInfo, ListEntry, SnapshotInfo
from mlgit.api.registry import PromoteResult, StageRecord
from mlgit.api.results_table import HistoryPoint, ResultRow, ResultSource
from mlgit.api.status import StatusEntry
from mlgit.cli import main as cli_main
from mlgit.errors import MlgitError
from mlgit.format.config import StoreConfig, encode_config
from mlgit.format.ids import ObjectID
from mlgit.format.pack import ENTRY_HEADER, INDEX_ENTRY, INDEX_MAGIC, MAX_OBJECT_LEN, PACK_MAGIC
from mlgit.format.promotion import PROMOTION_MAGIC
from mlgit.format.snapshot import SNAPSHOT_MAGIC, Snapshot
from mlgit.format.tree import TREE_MAGIC
from mlgit.gitlink.commits import CommitInfo
from mlgit.snapshot.statcache import RACY_NS
from mlgit.snapshot.treewalk import Change
from mlgit.store.fsck import FsckReport

DOCS = Path(__file__).resolve().parent.parent / "docs"
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_CODE_NAME = re.compile(r"^`([A-Za-z_][A-Za-z0-9_]*)`$")


# -- markdown helpers ---------------------------------------------------------

def table_rows(text: str) -> list[list[str]]:
    """Every markdown table body row as stripped cells (header separators skipped)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("|") and line.endswith("|")):
            continue
        cells = [c.strip() for c in _CELL_SPLIT.split(line[1:-1])]
        if all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
            continue
        rows.append(cells)
    return rows


def code_name(cell: str) -> str | None:
    """``Foo`` for a cell that is exactly `` `Foo` ``, else None."""
    m = _CODE_NAME.match(cell)
    return m.group(1) if m else None


def section(text: str, heading: str, nested: bool = True) -> str:
    """The text under ``heading`` (a full heading line) up to the next heading.

    With ``nested`` the text of deeper headings below it is included; without, the
    section ends at the next heading of any level.
    """
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        pytest.fail(f"heading {heading!r} not found")
    level = len(heading) - len(heading.lstrip("#"))
    out = []
    for line in lines[start + 1:]:
        m = re.match(r"^(#+) ", line)
        if m and (len(m.group(1)) <= level or not nested):
            break
        out.append(line)
    return "\n".join(out)


def documented_fields(text: str) -> set[str]:
    """Field names in the first column of the tables in ``text``."""
    return {n for row in table_rows(text) if (n := code_name(row[0])) is not None}


# -- exit codes -----------------------------------------------------------------

def error_classes() -> dict[str, type[MlgitError]]:
    out = {}
    for name in errors_mod.__all__:
        obj = getattr(errors_mod, name)
        if inspect.isclass(obj) and issubclass(obj, MlgitError):
            out[name] = obj
    return out


def documented_error_codes(text: str) -> dict[str, list[int]]:
    """Class name -> exit codes of the rows whose first cell names it."""
    found: dict[str, list[int]] = {}
    for row in table_rows(text):
        name = code_name(row[0])
        if name is None or not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
            continue
        assert len(row) >= 2, f"row for {name} has no exit code: {row}"
        assert row[1].isdigit(), f"row for {name} has no exit code: {row}"
        found.setdefault(name, []).append(int(row[1]))
    return found


def test_every_error_class_is_exported() -> None:
    defined = {name for name, obj in vars(errors_mod).items()
               if inspect.isclass(obj) and issubclass(obj, MlgitError)
               and obj.__module__ == errors_mod.__name__}
    assert defined - set(errors_mod.__all__) == set(), "error classes missing from __all__"


def test_exit_codes_doc_matches_error_classes() -> None:
    text = (DOCS / "exit-codes.md").read_text()
    classes = error_classes()
    assert classes, "no MlgitError subclasses found in mlgit.errors.__all__"
    documented = documented_error_codes(text)
    missing = sorted(set(classes) - set(documented))
    assert missing == [], f"error classes with no row in docs/exit-codes.md: {missing}"
    unknown = sorted(set(documented) - set(classes))
    assert unknown == [], f"docs/exit-codes.md has rows for classes that do not exist: {unknown}"
    for name, codes in documented.items():
        assert len(codes) == 1, f"{name} has {len(codes)} rows in docs/exit-codes.md"
        assert codes[0] == classes[name].exit_code, (
            f"docs/exit-codes.md says {name} exits {codes[0]}, "
            f"the code says {classes[name].exit_code}")


def all_error_classes() -> dict[str, type[MlgitError]]:
    """Every MlgitError subclass defined anywhere in the package (the CLI imports it all)."""
    out: dict[str, type[MlgitError]] = {"MlgitError": MlgitError}
    todo: list[type[MlgitError]] = [MlgitError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("mlgit.") and sub.__name__ not in out:
                out[sub.__name__] = sub
                todo.append(sub)
    return out


def test_exit_codes_doc_names_no_missing_class() -> None:
    text = (DOCS / "exit-codes.md").read_text()
    named = set(re.findall(r"`([A-Z][A-Za-z0-9]*Error)`", text))
    assert named, "docs/exit-codes.md names no error class"
    assert named - set(all_error_classes()) == set(), "names classes that do not exist"


def test_exit_codes_doc_mentions_error_classes_outside_errors_module() -> None:
    # A class defined elsewhere (not in the table) must at least be named in the doc.
    text = (DOCS / "exit-codes.md").read_text()
    named = set(re.findall(r"`([A-Z][A-Za-z0-9]*Error)`", text))
    assert set(all_error_classes()) - named == set()


def test_exit_codes_doc_matches_cli_constants() -> None:
    text = (DOCS / "exit-codes.md").read_text()
    constants = {n: v for n, v in vars(cli_main).items()
                 if n.startswith("EXIT_") and isinstance(v, int)}
    assert constants, "mlgit.cli.main defines no EXIT_* constants"
    documented: dict[str, int] = {}
    for row in table_rows(text):
        for cell in row[1:]:
            name = code_name(cell)
            if name is not None and name.startswith("EXIT_"):
                assert row[0].isdigit(), f"row for {name} does not start with its code: {row}"
                documented[name] = int(row[0])
    assert documented == constants
    codes = {int(row[0]) for row in table_rows(text) if row and row[0].isdigit()}
    assert {0, 1, 2} <= codes, "success, OS error and usage error codes must be listed"


def test_table_parser_sees_a_wrong_code() -> None:
    # The checks above must be able to fail: a doctored table is caught.
    text = (DOCS / "exit-codes.md").read_text()
    good = documented_error_codes(text)
    doctored = text.replace("| `ConflictError` | 9 |", "| `ConflictError` | 99 |")
    assert doctored != text
    assert documented_error_codes(doctored)["ConflictError"] == [99] != good["ConflictError"]


# -- cli.md ---------------------------------------------------------------------

def test_cli_doc_covers_every_command_and_option() -> None:
    text = (DOCS / "cli.md").read_text()
    assert isinstance(cli_main.cli, click.Group)
    problems = []
    for opt in cli_main.cli.params:
        for flag in getattr(opt, "opts", []):
            if not re.search(rf"`{re.escape(flag)}[` ]", text):
                problems.append(f"global option {flag}")
    for name, cmd in cli_main.cli.commands.items():
        body = section(text, f"### `git ml {name}`")
        for param in cmd.params:
            if isinstance(param, click.Argument):
                assert param.name is not None
                if param.name.upper() not in body:
                    problems.append(f"{name}: argument {param.name.upper()}")
                continue
            assert isinstance(param, click.Option)
            for flag in param.opts:
                if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", body):
                    problems.append(f"{name}: option {flag}")
            if param.hidden:
                hidden = body.split("Hidden options", 1)
                if len(hidden) != 2 or param.opts[0] not in hidden[1]:
                    problems.append(f"{name}: hidden option {param.opts[0]} not marked hidden")
    assert problems == []


def _sample_snapshot() -> Snapshot:
    return Snapshot(kind="dataset", name="data", tree=ObjectID("0" * 32), root="dir",
                    parents=(ObjectID("1" * 32),), time=1, tz=0, author="a <a@b>",
                    message="m", files=2, bytes=3, meta={"path": "data"})


def test_cli_doc_json_schemas_match_to_json() -> None:
    text = section((DOCS / "cli.md").read_text(), "## JSON output")
    oid = ObjectID("2" * 32)
    snap = _sample_snapshot()
    files = [FileInfo("a", "file", 1, executable=True), FileInfo("l", "symlink", 1, target="a")]
    change = Change("M", "a", 1, 2)
    row = ResultRow(oid, "r", 1, "c" * 40, 1, None, None, {"acc": 1}, "a <a@b>", 1,
                    (ResultSource("c" * 40, "e.json", oid, "json", "a <a@b>", 1),))
    stage = StageRecord("m", "production", oid, oid, None, 1, 0, "a <a@b>", "why")

    snapshot_keys = set(SnapshotInfo(oid, snap).to_json())
    show_keys = set(SnapshotInfo(oid, snap, files).to_json()) - snapshot_keys
    file_keys = set().union(*(f.to_json() for f in files))
    expected = {
        "### Snapshot object": snapshot_keys,
        "#### `show --json`": show_keys | file_keys,
        "#### `ls --json`": set(ListEntry("dataset", "data", oid, snap).to_json()),
        "#### `status --json`": set(
            StatusEntry("data", "data.mlgit", "data", oid, "modified", [change]).to_json()),
        "#### `diff --json`": set(change.to_json()),
        "#### `log --json`": set(LogEntry(CommitInfo("c", (), "a", 1, 0, "s", "t")).to_json()),
        "#### `lineage --json`": set(LineageEntry(oid, "r", 1, {}, None).to_json()),
        "#### `fsck --json`": set(FsckReport().to_json()) | {"repaired"},
        "#### `results --json`": set(row.to_json()),
        "#### `results --history --json`": set(HistoryPoint(row, "acc", 1, None, True).to_json())
        - set(row.to_json()),
        "#### `import --json`": set(ImportResult("d", "d.mlgit", "dataset", "d", "/srv/r",
                                                 "d", oid).to_json()),
        "#### `stages --json`": set(stage.to_json()),
        "#### `promote --json`": set(PromoteResult(stage, True).to_json()) - set(stage.to_json()),
        "#### `demote --json`": set(),
        "#### `board --json`": set(BoardResult(Path("d")).to_json()) | {"url"},
    }
    for heading, keys in expected.items():
        assert documented_fields(section(text, heading, nested=False)) == keys, heading
    # Every --json command has its schema section.
    for name, cmd in cli_main.cli.commands.items():
        if any(isinstance(p, click.Option) and "--json" in p.opts for p in cmd.params):
            assert f"#### `{name} --json`" in text, f"no JSON schema for {name}"


# -- format.md ------------------------------------------------------------------

def _render_magic(m: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in m)


def test_format_doc_states_the_constants() -> None:
    text = (DOCS / "format.md").read_text()
    for magic in (TREE_MAGIC, SNAPSHOT_MAGIC, PACK_MAGIC, INDEX_MAGIC, PROMOTION_MAGIC):
        assert _render_magic(magic) in text, _render_magic(magic)
    assert f"Entry header ({ENTRY_HEADER.size} bytes" in text
    assert f"Index entry ({INDEX_ENTRY.size} bytes)" in text
    assert f"{MAX_OBJECT_LEN >> 20} MiB" in text
    assert f"{RACY_NS // 1_000_000} ms" in text


def test_format_doc_default_config_is_what_init_writes() -> None:
    text = (DOCS / "format.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", section(text, "### Config"), re.S)
    assert blocks, "no JSON example in the Config section"
    assert blocks[0] == encode_config(StoreConfig()).decode()
    assert json.loads(blocks[0]) == json.loads(encode_config(StoreConfig()))


def test_format_doc_limits_table_lists_every_limit() -> None:
    """Every bound in mlgit/format/limits.py is in format.md's Limits table, and the
    table names no constant that does not exist there or in the codecs."""
    import mlgit.format.compression as compression
    import mlgit.format.limits as limits
    import mlgit.format.names as names
    import mlgit.format.records as records
    import mlgit.format.tree as tree
    import mlgit.sync.protocol as protocol

    table = section((DOCS / "format.md").read_text(), "## Limits", nested=False)
    documented = set(re.findall(r"`(MAX_[A-Z_]+)`", table))
    assert set(limits.__all__) <= documented
    known = set(limits.__all__) | {n for m in (compression, names, records, tree, protocol)
                                   for n in dir(m) if n.startswith("MAX_")}
    assert documented <= known
