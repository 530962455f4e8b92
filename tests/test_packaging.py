"""The package list in pyproject.toml is explicit; keep it complete."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    inits = (ROOT / "mlgit").rglob("__init__.py")
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in inits}
    assert on_disk | {"mlgit.hooks.scripts"} == listed
    assert config["package-dir"]["mlgit.hooks.scripts"] == "hooks"
    hooks = {p.name for p in (ROOT / "hooks").iterdir()}
    assert set(config["package-data"]["mlgit.hooks.scripts"]) == hooks
