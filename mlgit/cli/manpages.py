"""Man pages for ``git-ml`` and its verbs, generated from the click commands.

``git ml --help`` is git's ``git help ml``, which runs ``man git-ml``; ``git help
ml-add`` runs ``man git-ml-add``. The pages are made from the same click commands
that parse the command line (name, usage, help text, options, sub-commands), so
they never say anything ``git ml VERB --help`` does not. ``python -m
mlgit.cli.manpages DIR`` writes them to ``DIR`` (the repository keeps them in
``man/man1``, which packaging installs to ``<prefix>/share/man/man1``, where ``man``
finds them through ``<prefix>/bin`` on ``PATH``); ``tests/test_manpages.py`` fails
when the committed pages differ from what the commands generate.

The output depends only on the commands: no date, no version, no terminal width.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["main", "pages", "write_pages"]

_SOURCE = "git-ml"
_MANUAL = "Git Manual"


def pages(group: click.Group, prog: str = "git-ml") -> dict[str, str]:
    """Every page as ``{file name: roff text}``: ``git-ml.1`` and one per visible verb.

    A sub-group's verbs get pages of their own (``git-ml-note-add.1``); hidden
    commands and options (plumbing that git and the hooks call) get none.
    """
    out: dict[str, str] = {}
    root = click.Context(group, info_name=prog.replace("-", " ", 1), **group.context_settings)
    _collect(group, root, prog, out)
    return out


def _collect(cmd: click.Command, ctx: click.Context, page: str, out: dict[str, str]) -> None:
    subs = _visible(cmd, ctx)
    out[f"{page}.1"] = _page(cmd, ctx, page, subs)
    for name, sub in subs:
        _collect(sub, click.Context(sub, info_name=name, parent=ctx), f"{page}-{name}", out)


def _visible(cmd: click.Command, ctx: click.Context) -> list[tuple[str, click.Command]]:
    if not isinstance(cmd, click.Group):
        return []
    found = ((n, cmd.get_command(ctx, n)) for n in cmd.list_commands(ctx))
    return [(n, c) for n, c in found if c is not None and not c.hidden]


def _page(cmd: click.Command, ctx: click.Context, page: str,
          subs: list[tuple[str, click.Command]]) -> str:
    words = ctx.command_path
    lines = [f'.TH "{page.upper()}" "1" "" "{_SOURCE}" "{_MANUAL}"', ".SH NAME",
             f"{_esc(page)} \\- {_esc(_summary(cmd).removeprefix(page + ': '))}", ".SH SYNOPSIS",
             f".B {_esc(words)}", _esc(" ".join(cmd.collect_usage_pieces(ctx)))]
    body = _paragraphs(_help(cmd))
    if subs:
        body += [".PP", f"Each command has its own page, \\fB{_esc(page)}\\-\\fICOMMAND\\fR(1); "
                 f"\\fB{_esc(words)} \\fICOMMAND\\fB \\-\\-help\\fR prints its usage."]
    if body:
        lines += [".SH DESCRIPTION", *body]
    options = [r for r in (p.get_help_record(ctx) for p in cmd.get_params(ctx)
                           if isinstance(p, click.Option)) if r]
    if options:
        lines.append(".SH OPTIONS")
        for names, text in options:
            lines += [".TP", f"\\fB{_esc(names)}\\fR", _esc(text) if text else "\\&"]
    if subs:
        lines.append(".SH COMMANDS")
        for name, sub in subs:
            lines += [".TP", f"\\fB{_esc(f'{words} {name}')}\\fR",
                      f"{_esc(_summary(sub))} See \\fB{_esc(f'{page}-{name}')}\\fR(1)."]
    see = ([page.rsplit("-", 1)[0]] if page.count("-") > 1 else []) + ["git"]
    lines += [".SH SEE ALSO", ",\n".join(f"\\fB{_esc(s)}\\fR(1)" for s in see)]
    return "\n".join(lines) + "\n"


def _help(cmd: click.Command) -> str:
    """The command's help text as click shows it: up to a form feed, no backspace lines."""
    text = (cmd.help or "").split("\f", 1)[0]
    return "\n".join(line for line in text.splitlines() if line.strip() != "\b").strip()


def _summary(cmd: click.Command) -> str:
    first = _help(cmd).split("\n\n", 1)[0]
    return " ".join(first.split()) or cmd.get_short_help_str(limit=200)


def _paragraphs(text: str) -> list[str]:
    out: list[str] = []
    for para in text.split("\n\n") if text else []:
        if out:
            out.append(".PP")
        out += [_esc(line.strip()) for line in para.splitlines() if line.strip()]
    return out


def _esc(text: str) -> str:
    """``text`` safe on a roff text line: backslashes and dashes escaped, no request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def write_pages(directory: Path, group: click.Group | None = None) -> list[Path]:
    """Write :func:`pages` of ``group`` (default: the git-ml CLI) into ``directory``.

    Pages of verbs that no longer exist are removed, so the directory holds
    exactly what the commands generate. Returns the paths written.
    """
    if group is None:
        from mlgit.cli.main import cli

        group = cli
    want = pages(group)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("git-ml*.1"):
        if old.name not in want:
            old.unlink()
    written = []
    for name, text in sorted(want.items()):
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m mlgit.cli.manpages [DIR]`` (default ``man/man1``): write the pages."""
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0] if args else "man/man1")
    for path in write_pages(directory):
        click.echo(str(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
