"""The layers of docs/architecture.md: imports point downward, only the CLI prints."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "mlgit"
# Higher number = higher layer. A module may import only its own layer or lower ones.
LAYERS = {"errors": 0, "format": 1, "records": 1.5, "store": 2, "snapshot": 3, "gitlink": 3,
          "api": 5, "tf": 6, "sync": 4, "hooks": 4, "cli": 7, "__init__": 6}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> list[tuple[str, Path]]:
    out = []
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts)
        out.append((name.removesuffix(".__init__") if rel.name == "__init__" else name, p))
    return out


def test_imports_point_downward() -> None:
    bad = []
    for name, path in _modules():
        own = _layer(name) if name != "mlgit" else "__init__"
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlgit"):
                targets.append(node.module)
            elif isinstance(node, ast.Import):
                targets += [a.name for a in node.names if a.name.startswith("mlgit")]
            for t in targets:
                other = "__init__" if t == "mlgit" else _layer(t)
                if LAYERS[other] > LAYERS[own]:
                    bad.append(f"{name} imports {t}")
    assert bad == []


# The one module below the CLI that reads the environment: the variables git itself
# honours (GIT_DIR, GIT_SSH_COMMAND...), which the Python API must honour as git does.
READS_GIT_ENVIRONMENT = "mlgit.gitlink.env"


def test_only_cli_prints_or_reads_environment() -> None:
    bad = []
    for name, path in _modules():
        if _layer(name) == "cli":
            continue
        if name == READS_GIT_ENVIRONMENT:
            tree = ast.parse(path.read_text())
            assert not any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                           and n.func.id == "print" for n in ast.walk(tree))
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                node.func.id == "print"
            ):
                bad.append(f"{name}: print()")
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and (
                isinstance(node.value, ast.Name) and node.value.id == "os"
            ):
                bad.append(f"{name}: os.{node.attr}")
            if isinstance(node, ast.Attribute) and node.attr == "echo" and (
                isinstance(node.value, ast.Name) and node.value.id == "click"
            ):
                bad.append(f"{name}: click.echo")
    assert bad == []


def test_core_commands_never_import_tensorflow() -> None:
    import subprocess
    import sys

    code = ("import sys, mlgit, mlgit.cli.main; "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_git_environment_module_reads_only_git_variables() -> None:
    """gitlink/env.py reads git's own variables (GIT_*), nothing of git-ml's own."""
    text = (PKG / "gitlink" / "env.py").read_text()
    keys = set(re.findall(r'get\("([A-Z_]+)"\)', text))
    assert keys, keys
    assert all(k.startswith("GIT_") for k in keys), keys


def test_the_architecture_doc_draws_these_layers() -> None:
    """docs/architecture.md's diagram: top to bottom, the layers of LAYERS, each package once.

    Lines not separated by a ``│`` line are one level (peers); every level is lower
    than the one above it.
    """
    doc = (PKG.parent / "docs" / "architecture.md").read_text()
    diagram = doc.split("## Layers", 1)[1].split("```", 2)[1]
    levels: list[list[str]] = [[]]
    for line in diagram.splitlines():
        if line.strip() == "│":
            levels.append([])
            continue
        m = re.match(r"\s*(?:│\s*)?\w*\s+mlgit/(\w+)\s", line)
        if m:
            levels[-1].append(m.group(1))
    drawn = [name for level in levels for name in level]
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}
    packages |= {"__init__", "errors"}
    assert sorted(drawn) == sorted(packages) == sorted(LAYERS)
    ranks = [{LAYERS[name] for name in level} for level in levels if level]
    assert all(len(r) == 1 for r in ranks), levels  # peers share a layer
    order = [r.pop() for r in ranks]
    assert order == sorted(order, reverse=True), levels
    assert len(set(order)) == len(order), levels


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` imports, by any import statement.

    Top-level, function-level (lazy) and ``TYPE_CHECKING`` imports alike: each is an
    edge of the import graph whether or not it runs at import time. ``from p import m``
    is an edge to module ``p.m`` when there is one, else to ``p``.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[: len(up) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for a in node.names:
                target = f"{base}.{a.name}"
                out.add(target if target in known else base)
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                out.update(".".join(parts[:i]) for i in range(len(parts), 0, -1)
                           if ".".join(parts[:i]) in known)
    return (out & known) - {name}


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or not (itself only if on a cycle)."""
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        v = todo.pop()
        if v not in seen:
            seen.add(v)
            todo.extend(graph[v])
    return seen


def _shortest_cycle(graph: dict[str, set[str]], start: str) -> list[str]:
    """A shortest ``[start, ..., start]`` (breadth first); ``start`` must be on a cycle."""
    came: dict[str, str] = {}
    frontier = [start]
    while start not in came:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w not in came:
                    came[w] = v
                    nxt.append(w)
        frontier = nxt
    path = [start]
    while len(path) == 1 or path[-1] != start:
        path.append(came[path[-1]])
    return path[::-1]


def _cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """For each strongly connected part of ``graph`` with a cycle: one cycle and the part.

    The cycle (``[a, b, ..., a]``) is a shortest one through the part's first module
    in sorted order; the part lists every module on some cycle with it.
    """
    reach = {v: _reach(graph, v) for v in graph}
    parts = {tuple(sorted(w for w in reach[v] if v in reach[w])) for v in graph if v in reach[v]}
    return [(_shortest_cycle(graph, part[0]), list(part)) for part in sorted(parts)]


def _layer_cycles(modules: dict[str, Path]) -> list[str]:
    """Every import circle inside one layer, as ``a -> b -> a``."""
    known = set(modules)
    graph = {name: {t for t in _imports(name, path, known) if _layer(t) == _layer(name)}
             for name, path in modules.items()}
    return [" -> ".join(c) + (f" (the circle holds {len(part)} modules: {', '.join(part)})"
                              if len(part) > len(c) - 1 else "")
            for c, part in _cycles(graph)]


def test_no_import_circle_inside_a_layer() -> None:
    """Within a layer the modules import each other one way only (lazy imports count too)."""
    assert _layer_cycles(dict(_modules())) == []


def test_the_circle_rule_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from mlgit.api import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from .c import g\n    return g\n")
    (tmp_path / "c.py").write_text("from typing import TYPE_CHECKING\n"
                                   "if TYPE_CHECKING:\n    import mlgit.api.a as a\n")
    (tmp_path / "d.py").write_text("from mlgit.api import c\n")
    (tmp_path / "e.py").write_text("from mlgit.api.d import x\n")
    modules = {f"mlgit.api.{n}": tmp_path / f"{n}.py" for n in "abcde"}
    modules["mlgit.errors"] = tmp_path / "e.py"  # another layer: never part of a circle
    assert _layer_cycles(modules) == ["mlgit.api.a -> mlgit.api.b -> mlgit.api.c -> mlgit.api.a"]
    (tmp_path / "c.py").write_text("import mlgit.errors\n")
    assert _layer_cycles(modules) == []


def test_the_api_verbs_take_the_core_and_only_the_facade_imports_them() -> None:
    """``api/core.py`` imports no verb module; no verb module imports ``api/repo.py``.

    Every verb module takes a :class:`~mlgit.api.core.Core`; ``Repo`` (the facade)
    is a ``Core`` whose methods delegate to them.
    """
    modules = dict(_modules())
    known = set(modules)
    api = {name for name in known if name.startswith("mlgit.api.")}
    imports = {name: _imports(name, modules[name], known) & api for name in api}
    assert imports["mlgit.api.core"] <= {"mlgit.api.events"}
    assert sorted(name for name, deps in imports.items() if "mlgit.api.repo" in deps) == []


def _is_module(dotted: str) -> bool:
    path = PKG.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_uses(name: str, path: Path) -> list[str]:
    """Where module ``name`` uses another module's ``_private`` name.

    ``from mlgit.x import _y``, and ``m._y`` where ``m`` is bound to a git-ml module
    by ``import mlgit.x as m`` or ``from mlgit import x`` (anywhere in the module,
    lazy imports too).
    """
    tree = ast.parse(path.read_text())
    bad: list[str] = []
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlgit"):
            for a in node.names:
                if _private(a.name) and node.module != name:
                    bad.append(f"{name} imports {node.module}.{a.name}")
                elif _is_module(f"{node.module}.{a.name}"):
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("mlgit") and a.asname:
                    aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr)
                and isinstance(node.value, ast.Name) and node.value.id in aliases
                and aliases[node.value.id] != name):
            bad.append(f"{name} uses {aliases[node.value.id]}.{node.attr}")
    return bad


def test_no_module_uses_another_modules_private_names() -> None:
    """A ``_name`` is its module's own: others go through its public interface."""
    bad = [use for name, path in _modules() for use in _private_uses(name, path)]
    assert bad == []


def test_the_private_name_rule_catches_both_spellings(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from mlgit.sync.remote import _config\n"
                     "from mlgit.api import sync\n"
                     "import mlgit.errors as errors\n"
                     "def f():\n    return sync._connect, errors.__all__, sync.push\n")
    assert _private_uses("mlgit.probe", probe) == [
        "mlgit.probe imports mlgit.sync.remote._config", "mlgit.probe uses mlgit.api.sync._connect"]


def test_both_sides_of_the_ssh_transport_share_one_protocol_module() -> None:
    """ssh.py (client) and serve.py (server) import protocol.py and nothing of each other."""
    def imports(name: str) -> set[str]:
        tree = ast.parse((PKG / "sync" / f"{name}.py").read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}

    client, server = imports("ssh"), imports("serve")
    assert "mlgit.sync.protocol" in client
    assert "mlgit.sync.protocol" in server
    assert "mlgit.sync.serve" not in client
    assert "mlgit.sync.ssh" not in server


def test_every_backend_takes_the_layout_from_one_module() -> None:
    """No backend keeps its own copy of the ref kinds or the pack name rule."""
    for name in ("backend", "s3", "ssh", "serve"):
        text = (PKG / "sync" / f"{name}.py").read_text()
        assert "mlgit.sync.layout" in text, name
        assert "[0-9a-f]{32}" not in text, name
        assert '("datasets", "checkpoints")' not in text, name
