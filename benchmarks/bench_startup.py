"""Start-up of git-ml: import time of the CLI and wall time of ``git ml status``.

Compares builds of git-ml (source trees holding ``mlgit/``) on the same machine,
alternating them run by run so each sees the same background load, and reports
the minimum (and median) of each figure::

    git archive main mlgit | tar -x -C /tmp/base        # a build to compare with
    .venv/bin/python benchmarks/bench_startup.py before=/tmp/base after=.

Figures: ``import``, the cumulative microseconds ``python -X importtime`` gives
``mlgit.cli.main``; ``status``, the wall time of ``git ml status`` in a work tree
with one dataset of ``--files`` small files (its stat cache warm, so the command
is mostly start-up), and its CPU time (user + system, of git and git-ml), which
a loaded machine disturbs less than wall time. Every run has a fresh hermetic environment (temporary
``HOME``, ``GIT_CONFIG_NOSYSTEM=1``, a fixed identity). Stdlib only; the
interpreter is the one running this script, so it needs git-ml's dependencies.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]


def _env(home: Path, wrappers: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PYTHON"))}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="Bench",
               GIT_AUTHOR_EMAIL="bench@example.com", GIT_COMMITTER_NAME="Bench",
               GIT_COMMITTER_EMAIL="bench@example.com", LC_ALL="C.UTF-8")
    if wrappers is not None:
        env["PATH"] = f"{wrappers}{os.pathsep}{env.get('PATH', '')}"
    return env


def _wrapper(where: Path, source: Path) -> Path:
    """A directory holding a ``git-ml`` that runs the build in ``source``."""
    where.mkdir(parents=True)
    script = where / "git-ml"
    # The build's own console entry point: mlgit.cli.entry where it has one.
    entry = "entry" if (source / "mlgit" / "cli" / "entry.py").exists() else "main"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(source)!r})\n"
                      f"from mlgit.cli.{entry} import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return where


def _make_repo(work: Path, files: int, env: dict[str, str]) -> None:
    def run(*args: str) -> None:
        subprocess.run(args, cwd=work, env=env, check=True, capture_output=True)

    work.mkdir()
    run("git", "init", "-q", "-b", "main")
    data = work / "data"
    for i in range(files):
        d = data / f"d{i % 32:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.csv").write_text(f"{i},{i * i},{i % 7}\n" * 20)
    run("git", "ml", "init")
    run("git", "ml", "add", "data")
    run("git", "commit", "-q", "-m", "data")
    run("git", "ml", "status")  # the stat cache is warm from here on


def _import_us(source: Path, env: dict[str, str], cwd: Path) -> int:
    # ``-c`` puts the current directory first on sys.path: run where no mlgit/ is.
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import mlgit.cli.main"],
                         env={**env, "PYTHONPATH": str(source)}, cwd=cwd, capture_output=True,
                         text=True, check=True)
    for line in out.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == "mlgit.cli.main":
            return int(parts[1])
    raise RuntimeError(f"no import time for mlgit.cli.main in:\n{out.stderr[-2000:]}")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _status_s(work: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (git and git-ml, user + system) of one ``git ml status``."""
    c0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run(["git", "ml", "status"], cwd=work, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0, _children_cpu() - c0


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print one table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="+", metavar="NAME=SOURCE",
                    help="a name and a directory holding that build's mlgit/")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--files", type=int, default=1000)
    args = ap.parse_args(argv)
    builds = [(name, Path(src).resolve()) for name, _, src in
              (b.partition("=") for b in args.builds)]
    for name, src in builds:
        if not (src / "mlgit" / "__init__.py").is_file():
            ap.error(f"{name}: {src} holds no mlgit/")
    with tempfile.TemporaryDirectory(prefix="mlgit-startup-") as tmp:
        root = Path(tmp)
        (root / "home").mkdir()
        wrappers = {name: _wrapper(root / "bin" / name, src) for name, src in builds}
        envs = {name: _env(root / "home", w) for name, w in wrappers.items()}
        work = root / "repo"
        _make_repo(work, args.files, envs[builds[0][0]])
        imports: dict[str, list[int]] = {name: [] for name, _ in builds}
        status: dict[str, list[float]] = {name: [] for name, _ in builds}
        cpu: dict[str, list[float]] = {name: [] for name, _ in builds}
        for _ in range(args.runs):
            for name, src in builds:
                imports[name].append(_import_us(src, envs[name], root / "home"))
                wall, used = _status_s(work, envs[name])
                status[name].append(wall)
                cpu[name].append(used)
    print(f"{args.runs} runs each, alternated; {args.files} files; load {os.getloadavg()[0]:.2f}")
    print(f"{'build':<12} {'import min':>11} {'median':>9} {'status min':>11} {'median':>9}"
          f" {'status CPU min':>15} {'median':>9}")
    for name, _ in builds:
        print(f"{name:<12} {min(imports[name]) / 1000:>8.1f} ms "
              f"{statistics.median(imports[name]) / 1000:>6.1f} ms "
              f"{min(status[name]) * 1000:>8.1f} ms "
              f"{statistics.median(status[name]) * 1000:>6.1f} ms "
              f"{min(cpu[name]) * 1000:>12.1f} ms "
              f"{statistics.median(cpu[name]) * 1000:>6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
