"""Hostile imported pointers: a teammate's commit chooses the source URL git-ml connects to.

An imported pointer (version 3) records a source URL and a revision; whoever can
push controls both. A URL that would make ssh read an option (a host or user
starting with ``-``), git's ``<transport>::`` syntax (``ext::`` runs a command),
a relative path or one with ``..`` (reading another repository of the victim's
machine), credentials, control characters: each is refused when the pointer is
decoded, so no command ever sees it. The victim's ssh client is a script that
leaves a mark when run: it must never run for a refused pointer. As for every bad
pointer, each is reported on one line (exit 7), the hooks only warn, the good
pointers beside it are checked out, and fsck reports only ``bad-pointer``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import git, make_tree, read_tree, run_gitml
from hypothesis import given
from hypothesis import strategies as st

from mlgit.errors import FormatError, PointerError
from mlgit.format.ids import ObjectID
from mlgit.format.limits import MAX_POINTER_LEN, MAX_SOURCE_URL_LEN
from mlgit.format.pointer import Pointer, PointerSource, decode_pointer, encode_pointer
from mlgit.format.source import check_source_url, parse_import_rev
from mlgit.gitlink.settings import check_shared_key

HEX = ObjectID("0123456789abcdef" * 2)
EXIT_POINTER = 7

HOSTILE_URLS = [
    "ssh://-oProxyCommand=touch/srv/reg",          # ssh would read the host as an option
    "-oProxyCommand=touch:srv/reg",                 # the same, git's host:path form
    "ssh://-lroot@host/srv/reg",                    # a user that is an option
    "host:-srv/reg",                                # a path the server reads as an option
    "ext::sh -c touch% /tmp/pwned",                 # git's ext transport runs a command
    "ext::sh",
    "fd::17",
    "file:///srv/../../home/victim/secrets",        # `..` out of the path named
    "/srv/registry/../../etc",
    "../victim-secrets",                            # relative: the victim's own files
    "registry",
    "ssh://alice:hunter2@host/srv/reg",             # credentials in a committed file
    "https://alice:hunter2@git.example.com/reg.git",
    "ssh://host:0/srv/reg",
    "ssh://host:99999/srv/reg",
    "ftp://host/srv/reg",
    "/srv/reg\x1b[2J",                              # control characters for the terminal
    "/srv/reg\u202e",
    " /srv/reg",
    "s3://UPPER/reg",
    "s3://bucket/a/../b",
    "/" + "a" * MAX_SOURCE_URL_LEN,
]


def _v3(url_field: str, rev: str = "mnist", name: str = "mnist") -> bytes:
    return (f"mlgit-pointer: 3\nkind: dataset\nname: {name}\nid: {HEX}\nsource: {url_field}\n"
            f"rev: {rev}\n").encode()


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_decoder_refuses_hostile_source_urls(url: str) -> None:
    with pytest.raises(PointerError) as e:
        decode_pointer(_v3(json.dumps(url)), "data.mlgit")
    assert "\n" not in str(e.value)
    assert str(e.value).startswith("data.mlgit: ")
    with pytest.raises(FormatError):
        check_source_url(url)
    with pytest.raises(FormatError):  # nor does git-ml ever write one
        encode_pointer(Pointer("dataset", "mnist", HEX, source=PointerSource(url, "mnist")))


@pytest.mark.parametrize("body", [
    _v3("/srv/reg"),                          # not a JSON string
    _v3('"/srv/reg'),                         # unterminated
    _v3('["/srv/reg"]'),                      # not a string
    _v3('"/srv/reg"', rev="other"),           # rev names another dataset
    _v3('"/srv/reg"', rev="mnist@xyz"),       # not an id prefix
    _v3('"/srv/reg"', rev="mnist~99999999"),  # absurdly far back
    _v3('"/srv/reg"', rev="mn ist"),
    _v3('"/srv/reg"').replace(b"rev: mnist\n", b""),        # a required key missing
    _v3('"/srv/reg"') + b"ours: " + HEX.encode() + b"\n",   # a conflict key
    _v3('"/srv/reg"').replace(b"mlgit-pointer: 3", b"mlgit-pointer: 1"),  # v1 with v3 keys
    _v3('"/srv/reg"').replace(b"mlgit-pointer: 3", b"mlgit-pointer: 4"),  # a newer version
], ids=lambda b: b.decode(errors="replace").split("\n")[-2][:30])
def test_decoder_refuses_malformed_imported_pointers(body: bytes) -> None:
    with pytest.raises(PointerError):
        decode_pointer(body, "data.mlgit")


def test_good_urls_round_trip() -> None:
    for url in ["/srv/registry", "/srv/my registry", "file:///srv/registry",
                "ssh://git@host:2222/srv/reg.git", "git@github.com:org/reg.git",
                "host:~/reg", "s3://bucket/reg/prefix", "https://git.example.com/org/reg.git",
                "/srv/r\u00e9gistry"]:
        p = Pointer("checkpoint", "run-1", HEX, source=PointerSource(url, "run-1@abcd~2"))
        data = encode_pointer(p)
        assert len(data) <= MAX_POINTER_LEN
        assert decode_pointer(data) == p
        assert data.isascii()
    assert str(parse_import_rev(" data@ABCD~~3 ")) == "data@abcd~4"


@given(st.text(max_size=80))
def test_any_source_text_is_refused_or_checked(text: str) -> None:
    """Whatever a pointer's ``source`` holds: a PointerError, or a URL the check accepts."""
    try:
        p = decode_pointer(_v3(json.dumps(text)), "p.mlgit")
    except PointerError:
        return
    assert p.source is not None
    assert check_source_url(p.source.url) == text


def test_shared_settings_take_only_source_urls_as_subsections() -> None:
    assert check_shared_key("ml.https://git.example.com/org/reg.git.url") is None
    assert check_shared_key("ml./srv/registry.endpoint") is None
    assert check_shared_key("ml.ext::sh.url") is not None
    assert check_shared_key("ml.-oProxyCommand=x:reg.url") is not None
    assert check_shared_key("ml.pushImports") is None


@pytest.fixture
def marker_ssh(tmp_path: Path) -> tuple[Path, Path]:
    """(an ssh client that leaves a mark when run, the mark's path)."""
    mark = tmp_path / "ssh-was-run"
    script = tmp_path / "fake-ssh"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> '{mark}'\nexit 255\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, mark


def test_teammates_hostile_sources_never_reach_a_command(tmp_path: Path,
                                                         marker_ssh: tuple[Path, Path]) -> None:
    script, mark = marker_ssh
    # A registry and a project that imports from it, pushed to the project's origin.
    reg = tmp_path / "registry"
    reg.mkdir()
    git(reg, "init", "-q")
    run_gitml(reg, "init")
    make_tree(reg / "mnist", {"a.txt": "a\n"})
    run_gitml(reg, "add", "mnist")
    git(reg, "commit", "-qm", "v1")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    attacker = tmp_path / "attacker"
    git(tmp_path, "clone", "-q", str(origin), str(attacker))
    run_gitml(attacker, "init")
    run_gitml(attacker, "import", str(reg), "mnist", "good")
    sid = (attacker / "good.mlgit").read_text().split("id: ")[1].split()[0]
    names = []
    for i, url in enumerate(HOSTILE_URLS):
        name = f"bad{i}"
        (attacker / f"{name}.mlgit").write_bytes(_v3(json.dumps(url)).replace(
            HEX.encode(), sid.encode()))
        names.append(name)
    git(attacker, "add", "-A")
    git(attacker, "commit", "-qm", "hostile sources")
    git(attacker, "push", "-q", "--no-verify", "origin", "HEAD:main")

    victim = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(origin), str(victim))
    run_gitml(victim, "init")
    git(victim, "config", "core.sshCommand", str(script))
    p = git(victim, "pull", "-q", "--no-rebase", check=False)  # hooks: warn, git succeeds
    assert p.returncode == 0, p.stderr
    p = run_gitml(victim, "pull", check=False)
    assert p.returncode == EXIT_POINTER, (p.stdout, p.stderr)
    errors = [line for line in p.stderr.splitlines() if line.startswith("git-ml: error:")]
    assert len(errors) == len(HOSTILE_URLS), p.stderr
    assert all(line.startswith("git-ml: ") for line in p.stderr.splitlines()), p.stderr
    assert read_tree(victim / "good") == read_tree(reg / "mnist")
    for name in names:
        assert not (victim / name).exists()
    p = run_gitml(victim, "status", "--json", check=False)
    assert p.returncode == EXIT_POINTER
    assert [e["path"] for e in json.loads(p.stdout)] == ["good"]
    p = run_gitml(victim, "fsck", "--json", check=False)
    report = json.loads(p.stdout)
    assert {x["kind"] for x in report["problems"]} == {"bad-pointer"}, report
    for verb in (["update", "bad4"], ["checkout", "bad0"]):
        p = run_gitml(victim, *verb, check=False)
        assert p.returncode == EXIT_POINTER, (verb, p.stderr)
    assert not mark.exists(), mark.read_text()
    assert not Path("/tmp/pwned").exists()


def test_an_accepted_ssh_source_goes_only_through_the_ssh_client(
        tmp_path: Path, marker_ssh: tuple[Path, Path]) -> None:
    """A well-formed ssh source is reached through the ssh git would run, as ``-- host``-safe
    arguments: the host, the quoted serve command, nothing the pointer could add."""
    script, mark = marker_ssh
    victim = tmp_path / "victim"
    victim.mkdir()
    git(victim, "init", "-q")
    run_gitml(victim, "init")
    url = "ssh://user@registry.example/srv/reg;touch .git"
    body = _v3(json.dumps(url))
    (victim / "data.mlgit").write_bytes(body)
    git(victim, "add", "data.mlgit")
    git(victim, "config", "core.sshCommand", str(script))
    p = run_gitml(victim, "checkout", check=False)
    assert p.returncode == EXIT_POINTER, p.stderr
    assert len(p.stderr.splitlines()) == 1, p.stderr
    runs = mark.read_text().splitlines()
    assert runs
    assert set(runs) == {"-o BatchMode=yes user@registry.example "
                         "git-ml serve-store '/srv/reg;touch .git'"}, runs
    assert sorted(os.listdir(victim)) == [".git", "data.mlgit"]


def test_a_hostile_source_store_changes_nothing_here(tmp_path: Path) -> None:
    """A source whose ref is garbage, or whose named snapshot is not in its packs: one
    error line with the format's exit code, and nothing written in the importing repo."""
    reg = tmp_path / "registry"
    reg.mkdir()
    git(reg, "init", "-q")
    run_gitml(reg, "init")
    make_tree(reg / "mnist", {"a.txt": "a\n"})
    run_gitml(reg, "add", "mnist")
    ref = reg / ".git/ml/refs/datasets/mnist"
    proj = tmp_path / "project"
    proj.mkdir()
    git(proj, "init", "-q")
    run_gitml(proj, "init")
    before = sorted(os.listdir(proj)), sorted(os.listdir(proj / ".git/ml/packs"))
    for body, code in ((b"\x00garbage" * 40, EXIT_POINTER), (HEX.encode() + b"\n", 5)):
        ref.write_bytes(body)
        p = run_gitml(proj, "import", str(reg), "mnist", check=False)
        assert p.returncode == code, p.stderr
        assert len(p.stderr.splitlines()) == 1, p.stderr
        assert p.stderr.startswith("git-ml: error: "), p.stderr
        assert (sorted(os.listdir(proj)), sorted(os.listdir(proj / ".git/ml/packs"))) == before
