"""Whole missions: parallel speedup and orchestration overhead.

    python tests/benchmarks/bench_mission.py

50 independent one-file tasks (each worker: write_file, then finish_task), a planner turn and
a reviewer turn, against a scripted model in its own process.
(a) 500 ms latency per turn, --parallel 1 beside --parallel 50, in one run: the speedup of the
    whole mission and of its build phase (first task.started to last task.finished).
(b) zero latency, --parallel 50: the whole mission's wall time, all in (target <= 2 s).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import subprocess  # noqa: E402
from datetime import datetime  # noqa: E402

from ocactors.actors.context import Meter, MissionContext  # noqa: E402
from ocactors.actors.mission import MissionRun, open_new_mission  # noqa: E402
from ocactors.actors.models import LimiterRegistry, RoleConfig, build_client  # noqa: E402
from ocactors.events import Journal, read_events  # noqa: E402
from ocactors.events import catalogue as ev  # noqa: E402
from ocactors.events.catalogue import MissionSettings  # noqa: E402

TASKS = 50
SERVER = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from ocactors.actors.models import ScriptedModelServer
from ocactors.actors.models.playbook import Playbook, TaskPlay, Verdict
tasks = [TaskPlay(f"T{{i}}", {{f"f{{i}}.txt": f"{{i}}\\n"}}) for i in range({TASKS})]
playbook = Playbook(plans=[tasks], verdicts=[Verdict(True)])
with ScriptedModelServer(playbook.script(), latency_s=float(sys.argv[1])) as server:
    print(server.base_url, flush=True)
    sys.stdin.readline()
"""


def mission(latency: float, parallel: int) -> tuple[float, float]:
    """(whole mission seconds, build phase seconds)."""
    workspace = Path(tempfile.mkdtemp(prefix="bench-mission-"))
    settings = MissionSettings(parallel=parallel, verify_command="true")
    with (
        subprocess.Popen(
            [sys.executable, "-c", SERVER, str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as model,
        httpx.Client(limits=httpx.Limits(max_connections=100)) as http,
    ):
        assert model.stdout is not None and model.stdin is not None
        url = model.stdout.readline().strip()
        registry = LimiterRegistry()
        clients = {
            role: build_client(
                RoleConfig(
                    role=role, provider="openai", model="m", base_url=url, max_concurrency=64
                ),
                http,
                registry,
            )
            for role in ("planner", "worker", "reviewer")
        }
        started = time.perf_counter()
        paths, journal = open_new_mission(
            workspace, "50 files", settings, lambda p, mission: Journal.open(p, mission=mission)
        )
        ctx = MissionContext(
            mission=paths.id,
            workspace=workspace,
            journal=journal,
            clients=clients,
            settings=settings,
            http=http,
            meter=Meter(),
            tick_s=0.05,
        )
        state = MissionRun.prepare(ctx, paths).run()
        journal.close()
        whole = time.perf_counter() - started
        model.stdin.write("\n")
        model.stdin.close()
    assert state.phase == "sealed", state.detail
    return whole, build_phase(paths.events)


def build_phase(path: Path) -> float:
    stamps = [
        datetime.fromisoformat(e.ts.replace("Z", "+00:00"))
        for e in read_events(path)
        if isinstance(e, ev.TaskStarted | ev.TaskFinished)
    ]
    return (max(stamps) - min(stamps)).total_seconds()


def main() -> None:
    serial, serial_build = mission(0.5, 1)
    wide, wide_build = mission(0.5, 50)
    print("(a) 50 one-file tasks, 500 ms per model turn")
    print("| run | whole mission s | build phase s |")
    print("|---|---|---|")
    print(f"| --parallel 1 | {serial:.1f} | {serial_build:.1f} |")
    print(f"| --parallel 50 | {wide:.1f} | {wide_build:.2f} |")
    print(f"| speedup | {serial / wide:.1f}x | {serial_build / wide_build:.1f}x |")
    times = sorted(mission(0.0, 50)[0] for _ in range(3))
    print(f"\n(b) the same mission with a zero-latency model: median {times[1]:.2f} s all in")


if __name__ == "__main__":
    main()
