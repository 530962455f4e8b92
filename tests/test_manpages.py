"""Man pages: generated from the click commands, committed, installed by pip.

``git ml --help`` is git's ``git help ml``, which runs ``man git-ml``; the "Try 'git
ml --help'" hint of every usage error leads there. The pages in ``man/man1`` must be
exactly what :mod:`mlgit.cli.manpages` makes of the commands (regenerate them with
``python -m mlgit.cli.manpages``), and a plain ``pip install`` into a fresh venv must
put them where ``man`` finds them through the venv's ``bin`` on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import git

from mlgit.cli.main import cli
from mlgit.cli.manpages import pages

ROOT = Path(__file__).resolve().parent.parent
MAN1 = ROOT / "man" / "man1"


def _visible(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    out = []
    for name in group.list_commands(click.Context(group)):
        cmd = group.get_command(click.Context(group), name)
        if cmd is None or cmd.hidden:
            continue
        out.append((f"{prefix}-{name}", cmd))
        if isinstance(cmd, click.Group):
            out += _visible(cmd, f"{prefix}-{name}")
    return out


def test_committed_man_pages_are_what_the_commands_generate() -> None:
    want = pages(cli)
    have = {p.name: p.read_text() for p in MAN1.glob("*.1")} if MAN1.exists() else {}
    stale = sorted(n for n in want.keys() | have.keys() if want.get(n) != have.get(n))
    assert not stale, (f"man/man1 is out of date ({', '.join(stale)}): run "
                       "`python -m mlgit.cli.manpages man/man1` and commit the result")


def test_every_visible_command_and_option_has_its_page() -> None:
    generated = pages(cli)
    for page, cmd in [("git-ml", cli), *_visible(cli, "git-ml")]:
        text = generated[f"{page}.1"]
        assert f'.TH "{page.upper()}" "1"' in text
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                for opt in p.opts:
                    assert opt.replace("-", "\\-") in text, (page, opt)
    hidden = {n for n, c in cli.commands.items() if c.hidden}
    assert hidden
    assert not any(f"git-ml-{n}.1" in generated for n in hidden)


@pytest.mark.skipif(shutil.which("groff") is None, reason="needs groff (man-db's groff-base)")
def test_pages_are_valid_roff() -> None:
    for name, text in pages(cli).items():
        p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=text,
                           capture_output=True, text=True)
        assert p.returncode == 0, (name, p.stderr)
        assert not p.stderr, (name, p.stderr)


def test_pip_install_into_a_fresh_venv_makes_git_ml_help_work(tmp_path: Path) -> None:
    assert shutil.which("man"), "the `man` program (Debian: man-db) is needed"
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tmp*"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    # The wheel is built by this environment's setuptools (scripts/setup-venv.sh installs
    # it) and installed with no index: a test reaches no network. No dependencies: man
    # needs only the installed files; the entry point is there for git to find `git-ml`.
    dist = tmp_path / "dist"
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                        "--no-build-isolation", "-w", str(dist), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    [wheel] = dist.glob("mlgit-*.whl")
    p = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                        "--no-deps", "--no-index", str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("MANPATH", "PYTHONPATH")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin", MANPAGER="cat",
               PAGER="cat", MANWIDTH="80")
    man1 = venv / "share" / "man" / "man1"
    for page in ["git-ml", *(name for name, _ in _visible(cli, "git-ml"))]:
        w = subprocess.run(["man", "-w", page], env=env, capture_output=True, text=True)
        assert w.returncode == 0, (page, w.stderr)
        assert Path(w.stdout.strip()) == man1 / f"{page}.1"
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    h = subprocess.run(["git", "ml", "--help"], cwd=repo, env=env, capture_output=True,
                       text=True, timeout=60)
    assert h.returncode == 0, h.stderr
    assert "git-ml - version datasets and checkpoints" in h.stdout
    assert "COMMANDS" in h.stdout
    assert "git ml add" in h.stdout
