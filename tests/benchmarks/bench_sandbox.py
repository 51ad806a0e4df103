"""The sandbox's cost per command, beside a bare subprocess.run of the same command, in one run.

python tests/benchmarks/bench_sandbox.py [runs]

For each backend that works here: the median wall time of ``true`` and of ``python -c pass``
started bare (``subprocess.run(["/bin/bash", "-c", cmd])``) and sandboxed (``prepare`` + the
same ``subprocess.run`` + clean-up).  Runs are interleaved so a busy machine slows all columns
alike.  Then the lease guard's before() + after() on a workspace of this repository's size.
Target: <= 20 ms added per command at the median.
"""

from __future__ import annotations

import functools
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ocactors.tools import sandbox
from ocactors.tools.lease_guard import LeaseGuard

REPO = Path(__file__).resolve().parents[2]
COMMANDS = {"true": "true", "python -c pass": f"{sys.executable} -c pass"}


def bare(root: Path, command: str) -> None:
    subprocess.run(["/bin/bash", "-c", command], cwd=root, check=True)


def boxed(root: Path, command: str, backend: str) -> None:
    with sandbox.prepare(command, workspace=root, writable=True, backend=backend) as prepared:
        subprocess.run(prepared.argv, env=prepared.env, cwd=root, check=True)


def medians(runs: int, variants: dict[str, Callable[[], None]]) -> dict[str, float]:
    """Median milliseconds of each variant, run in turn ``runs`` times."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, run in variants.items():
            started = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def workspace(parent: Path) -> Path:
    """A copy of this repository's sources, with a .git and a mission folder."""
    root = parent / "ws"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(".git", ".typecheck", "*cache*"))
    (root / ".git").mkdir()
    (root / ".opencode" / "missions" / "m").mkdir(parents=True)
    return root


def main(runs: int) -> None:
    backends = [name for name in sandbox.BACKENDS if sandbox.backend_works(name)]
    with tempfile.TemporaryDirectory() as folder:
        root = workspace(Path(folder))
        files = sum(1 for p in root.rglob("*") if p.is_file())
        print(f"{runs} runs each, interleaved; workspace: {files} files; medians in ms\n")
        print(f"{'command':<16} {'bare':>7} " + " ".join(f"{b:>9} {'added':>7}" for b in backends))
        for label, command in COMMANDS.items():
            variants: dict[str, Callable[[], None]] = {
                "bare": functools.partial(bare, root, command)
            }
            for name in backends:
                variants[name] = functools.partial(boxed, root, command, name)
            got = medians(runs, variants)
            cells = " ".join(f"{got[b]:>9.1f} {got[b] - got['bare']:>+7.1f}" for b in backends)
            print(f"{label:<16} {got['bare']:>7.1f} {cells}")
        guard_cost(root, runs)


def guard_cost(root: Path, runs: int) -> None:
    """before() + after() of the lease guard, the first (copying) and the usual (not copying)."""
    guard = LeaseGuard(root, root / ".opencode" / "shadow")
    started = time.perf_counter()
    guard.after(guard.before(["tools/sandbox.py"]))
    first = (time.perf_counter() - started) * 1000
    got = medians(runs, {"guard": lambda: _guard_once(guard)})
    print(f"\nlease guard before()+after(): first {first:.1f} ms (copies), then {got['guard']:.1f}")


def _guard_once(guard: LeaseGuard) -> None:
    guard.after(guard.before(["tools/sandbox.py"]))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
