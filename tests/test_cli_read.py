"""ls, status, tail, replay and monitor as a user drives them: subprocesses, real logs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pexpect
import pytest

from ocactors.actors.models import ScriptedModelServer
from ocactors.actors.models.playbook import Playbook, TaskPlay, Verdict
from ocactors.actors.state import MissionState, apply
from ocactors.events import Journal, create_mission_dir, list_missions, read_events
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import MissionSettings
from tests._mission_helpers import MissionHarness, textstats_playbook

CLI = [sys.executable, "-m", "ocactors.cli"]


def ocactors(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=90, env=env or dict(os.environ)
    )


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace = tmp_path_factory.mktemp("sealed")
    with ScriptedModelServer(textstats_playbook().script()) as server:
        MissionHarness(workspace, server).start("build textstats")
    return workspace


def write_log(workspace: Path, events: list[ev.Event], *, final: bool) -> Path:
    paths = create_mission_dir(workspace, f"20260101-00000{len(list_missions(workspace))}-abcd")
    with Journal.open(paths.events, mission=paths.id) as journal:
        for event in events:
            journal.append(event, actor="commander")
        if final:
            journal.append(ev.MissionFailed(reason="max-iterations", detail="x"), actor="commander")
    return paths.events


START = ev.MissionStarted(version=1, goal="a goal", workspace="/w", settings=MissionSettings())


def test_ls_shows_sealed_failed_stopped_and_crashed_missions(tmp_path: Path, sealed: Path) -> None:
    shutil.copytree(sealed / ".opencode", tmp_path / ".opencode")
    write_log(tmp_path, [START, ev.IterationStarted(iteration=1)], final=True)
    write_log(tmp_path, [START, ev.MissionStopped(reason="budget")], final=False)
    write_log(tmp_path, [START, ev.IterationStarted(iteration=1)], final=False)  # crashed
    done = ocactors("ls", "-C", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["state"] for r in rows) == ["crashed", "failed", "sealed", "stopped"]
    sealed_row = next(r for r in rows if r["state"] == "sealed")
    assert (sealed_row["tasks_done"], sealed_row["tasks_total"]) == (4, 4)
    assert sealed_row["tokens"] > 0
    table = ocactors("ls", "-C", str(tmp_path))
    assert "sealed" in table.stdout and "crashed" in table.stdout


def test_status_tells_plan_findings_checks_and_tokens(sealed: Path) -> None:
    done = ocactors("status", "-C", str(sealed))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "SEALED" in out and "F1" in out and "worker:T1#1" in out
    assert "checks: `" in out and "passed" in out
    assert "tokens: planner" in out


def test_tail_prints_filters_and_emits_json(sealed: Path) -> None:
    lines = ocactors("tail", "-C", str(sealed), "--type", "task.finished").stdout.splitlines()
    assert len(lines) == 4 and all("task.finished" in line for line in lines)
    workers = ocactors("tail", "-C", str(sealed), "--actor", "worker:*", "--json").stdout
    actors = {json.loads(line)["actor"] for line in workers.splitlines()}
    assert actors == {"worker:T1", "worker:T2", "worker:T3", "worker:F1"}
    later = ocactors("tail", "-C", str(sealed), "--since", "90", "--json").stdout.splitlines()
    assert json.loads(later[0])["seq"] == 91


CHILD = """
import sys, time
from pathlib import Path
from ocactors.events import Journal, create_mission_dir
from ocactors.events import catalogue as ev
paths = create_mission_dir(Path(sys.argv[1]), "20260102-000000-beef")
with Journal.open(paths.events, mission=paths.id) as journal:
    journal.append(ev.MissionStarted(version=1, goal="g", workspace="w"), actor="commander")
    print("started", flush=True)
    sys.stdin.readline()
    for i in range(1, 9):
        journal.append(ev.IterationStarted(iteration=i), actor="commander")
        time.sleep(0.15)
    journal.append(ev.MissionSealed(iterations=8), actor="commander")
"""


def test_tail_follows_another_process_live_and_exits_when_it_ends(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline().strip() == "started"
        with subprocess.Popen(
            [*CLI, "tail", "-f", "--json", "-C", str(tmp_path)], stdout=subprocess.PIPE, text=True
        ) as tail:
            assert tail.stdout is not None
            assert json.loads(tail.stdout.readline())["type"] == "mission.started"
            writer.stdin.write("go\n")
            writer.stdin.flush()
            delays = [_delay(json.loads(line)) for line in tail.stdout]
            assert tail.wait(timeout=10) == 0  # it ended by itself after the mission ended
        writer.wait(timeout=10)
    assert len(delays) == 9
    assert sorted(delays)[len(delays) // 2] < 0.2, delays
    assert max(delays) < 0.5, delays


def _delay(event: dict[str, str]) -> float:
    """Seconds from the writer's timestamp to now, when the line reached us."""
    written = datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
    return (datetime.now(UTC) - written).total_seconds()


def incremental_states(path: Path) -> dict[int, MissionState]:
    state, states = MissionState(), {}
    for event in read_events(path):
        state = apply(state, event)
        states[event.seq] = state
    return states


def test_replay_until_equals_the_incremental_state(sealed: Path) -> None:
    path = list_missions(sealed)[0].events
    states = incremental_states(path)
    for seq in (5, 30, 64, max(states)):
        done = ocactors("replay", "-C", str(sealed), "--until", str(seq), "--json")
        assert done.returncode == 0, done.stderr
        expected = json.loads(json.dumps(msgspec.to_builtins(states[seq])))
        assert json.loads(done.stdout) == expected, seq


def test_replay_of_one_actor_shows_its_sessions(sealed: Path) -> None:
    done = ocactors("replay", "-C", str(sealed), "--actor", "worker:T1", "--until", "20")
    assert done.returncode == 0, done.stderr
    assert "worker:T1#1" in done.stdout and "write_file" in done.stdout


def test_rerun_reproduces_offline_and_reports_a_tampered_log(tmp_path: Path, sealed: Path) -> None:
    done = ocactors("replay", "-C", str(sealed), "--rerun", "--dir", str(tmp_path / "a"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "same events and same files" in done.stdout
    tampered = tmp_path / "tampered"
    shutil.copytree(sealed, tampered)
    log = list_missions(tampered)[0].events
    text = log.read_text()
    assert "wrote README.txt" in text
    log.write_text(text.replace("wrote README.txt", "wrote README.md", 1))
    seq = next(e.seq for e in read_events(log) if "README.md" in json.dumps(str(e)))
    done = ocactors("replay", "-C", str(tampered), "--rerun", "--dir", str(tmp_path / "b"))
    assert done.returncode == 1
    assert f"recorded seq {seq}" in done.stdout, done.stdout


def test_fork_at_continues_a_copy_and_leaves_the_original_alone(
    tmp_path: Path, sealed: Path
) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(sealed, workspace)
    original = list_missions(workspace)[0]
    before = original.events.read_bytes()
    accepted = next(e.seq for e in read_events(original.events) if isinstance(e, ev.PlanAccepted))
    with ScriptedModelServer(textstats_playbook().script()) as server:
        env = {**os.environ, "OCACTORS_MODEL": "scripted", "OCACTORS_BASE_URL": server.base_url}
        done = ocactors(
            "replay", original.id, "-C", str(workspace), "--fork-at", str(accepted), env=env
        )
    assert done.returncode == 0, done.stderr
    assert original.events.read_bytes() == before
    fork = next(m for m in list_missions(workspace) if m.id != original.id)
    forked = list(read_events(fork.events))
    assert {e.mission for e in forked} == {fork.id}
    assert isinstance(forked[-1], ev.MissionSealed)


def test_damaged_logs_are_shown_with_a_note(tmp_path: Path, sealed: Path) -> None:
    shutil.copytree(sealed / ".opencode", tmp_path / ".opencode")
    log = list_missions(tmp_path)[0].events
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join([*lines[:10], b"garbage\n", *lines[10:], b'{"seq": 999, "ty']))
    (tmp_path / ".opencode" / "missions" / "20200101-000000-0000").mkdir()  # empty folder
    for command in (["ls"], ["status"], ["tail"], ["replay", "--until", "20"]):
        done = ocactors(*command, "-C", str(tmp_path))
        assert done.returncode == 0, (command, done.stderr)
        assert "Traceback" not in done.stderr
    status = ocactors("status", list_missions(tmp_path)[0].id[:15], "-C", str(tmp_path))
    assert "line 11" in status.stderr and "SEALED" in status.stdout


SLOW = Playbook(
    plans=[
        [
            TaskPlay("T1", {"a.txt": "a\n"}, worker_delay_s=1.5),
            TaskPlay("T2", {"b.txt": "b\n"}, worker_delay_s=1.5),
        ]
    ],
    verdicts=[Verdict(True)],
)


def test_monitor_shows_a_running_mission_on_a_terminal(tmp_path: Path) -> None:
    with ScriptedModelServer(SLOW.script()) as server:
        env = {**os.environ, "OCACTORS_MODEL": "scripted", "OCACTORS_BASE_URL": server.base_url}
        mission = subprocess.Popen(
            [*CLI, "task", "two files", "-C", str(tmp_path), "--verify", "true"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not list_missions(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        screen = pexpect.spawn(
            sys.executable,
            ["-m", "ocactors.cli", "monitor", "-C", str(tmp_path)],
            dimensions=(40, 140),
            timeout=20,
            encoding="utf-8",
        )
        screen.expect("BUILDING")
        screen.expect("T1")
        screen.expect("SEALED")
        screen.expect(pexpect.EOF)
        mission.wait(timeout=30)
    assert mission.returncode == 0


def test_the_example_in_debugging_md_reads_as_documented() -> None:
    example = Path(__file__).parent / "data" / "failed-mission"
    status = subprocess.run(  # from inside the workspace, as the doc shows it: no -C
        [*CLI, "status"], cwd=example, capture_output=True, text=True, timeout=90
    )
    assert "STOPPED (no-progress" in status.stdout
    assert "top_words must break ties alphabetically" in status.stdout
    spine = ocactors("tail", "-C", str(example), "--type", "mission.stopped")
    assert "no-progress" in spine.stdout
    doc = (Path(__file__).parents[1] / "docs" / "debugging.md").read_text()
    assert status.stdout.strip() in doc  # the doc shows the real output
