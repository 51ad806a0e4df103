"""Start-up time of the commands people run most, beside a bare interpreter in the same run.

    python tests/benchmarks/bench_startup.py            # 20 runs of each, medians
    python tests/benchmarks/bench_startup.py --runs 50

Each command is a fresh process, as from a shell: ``ocactors --help``, ``ls``, ``status`` and
``tail`` on a small finished mission (the recorded failed mission of ``tests/data``, 86 events,
copied to a temporary folder), beside ``python -c pass``.  The runs are interleaved (one of
each, then again) so a burst of load on a shared machine touches every row alike.  The table
gives the median, the fastest run, and the median minus the bare interpreter's: what
ocactors itself costs.

Bytecode is cached as for an installed package (in a temporary ``PYTHONPYCACHEPREFIX``,
written by a warm-up round), even where ``PYTHONDONTWRITEBYTECODE`` is set; ``--source``
sets that variable instead, so what has no bytecode beside it (an editable checkout that
never wrote any) is compiled at every start.  To compare two versions, install each in a
virtualenv and run this script with that virtualenv's ``python``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MISSION = ROOT / "tests" / "data" / "failed-mission"


def _cli() -> list[str]:
    """The console script beside this interpreter, as a person runs it (else ``-m``)."""
    script = Path(sys.executable).parent / "ocactors"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ocactors.cli"]


def commands(workspace: Path) -> dict[str, list[str]]:
    """The rows: a label and the argv that runs it."""
    cli = _cli()
    here = ["-C", str(workspace)]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "ocactors --help": [*cli, "--help"],
        "ocactors ls": [*cli, "ls", *here],
        "ocactors status": [*cli, "status", *here],
        "ocactors tail": [*cli, "tail", *here],
    }


def child_env(cache: Path | None) -> dict[str, str]:
    """The commands' environment: bytecode cached under ``cache`` (None: never cached)."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    if cache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run; its output is thrown away, and a
    failure stops the benchmark.  CPU time is what a shared machine distorts least.

    ``os.wait4`` blocks until the child ends and gives its own resource use: ``Popen.wait``
    with a timeout would poll, adding up to 50 ms to the wall time.  A timer kills a child
    that hangs.
    """
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    watchdog = threading.Timer(60, child.kill)
    watchdog.start()
    try:
        _, status, usage = os.wait4(child.pid, 0)
    finally:
        watchdog.cancel()
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, argv)
    return wall, usage.ru_utime + usage.ru_stime


def measure(
    rows: dict[str, list[str]], runs: int, env: dict[str, str]
) -> dict[str, list[tuple[float, float]]]:
    """``runs`` interleaved rounds, one run of every row each (after one warm-up round)."""
    for argv in rows.values():
        timed(argv, env)
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in rows}
    for _ in range(runs):
        for label, argv in rows.items():
            times[label].append(timed(argv, env))
    return times


def table(times: dict[str, list[tuple[float, float]]]) -> str:
    """Medians of wall and CPU time, the fastest run, and the wall median over the bare
    interpreter's, in milliseconds."""
    bare = statistics.median(wall for wall, _ in times["python -c pass"])
    lines = [
        "| command | wall median ms | fastest ms | CPU median ms | over `python -c pass` ms |",
        "|---|---|---|---|---|",
    ]
    for label, runs in times.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        fastest = min(w for w, _ in runs)
        lines.append(
            f"| `{label}` | {wall * 1e3:.0f} | {fastest * 1e3:.0f} | {cpu * 1e3:.0f} | "
            f"{(wall - bare) * 1e3:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each command (default 20)")
    parser.add_argument("--source", action="store_true", help="PYTHONDONTWRITEBYTECODE=1, no cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ocactors-startup-") as scratch:
        workspace = Path(scratch) / "mission"
        shutil.copytree(MISSION, workspace)
        env = child_env(None if args.source else Path(scratch) / "pycache")
        times = measure(commands(workspace), args.runs, env)
    python = sys.version.split()[0]
    cached = "compiled from source" if args.source else "bytecode cached"
    print(f"{args.runs} runs each, interleaved, {cached}; {' '.join(_cli())}; Python {python}")
    print(table(times))


if __name__ == "__main__":
    main()
