"""The layers of docs/architecture.md: imports point downward, only the CLI prints."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "mlgit"
# Higher number = higher layer. A module may import only its own layer or lower ones.
LAYERS = {"errors": 0, "format": 1, "records": 1.5, "store": 2, "snapshot": 3, "gitlink": 3,
          "api": 5, "tf": 6, "fs": 6, "sync": 4, "hooks": 4, "cli": 7, "__init__": 6}


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
