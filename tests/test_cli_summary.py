"""The end of a mission as a user reads it: `task`'s summary, `status`, `status --json`, time.

A textstats mission runs with `ocactors task` in a real git repository against a scripted
model on loopback; what the summary says is checked against independent sources (git's own
numstat between the baseline and the mission's ref, the folded state), and `status` must say
the same.  The mission's own running time is checked on logs whose clocks are set by hand.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from ocactors.actors.models import ScriptedModelServer
from ocactors.actors.state import MissionState, fold_mission
from ocactors.events import Journal, create_mission_dir, list_missions, read_events
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import Event
from tests._mission_helpers import CHECK, textstats_playbook

CLI = [sys.executable, "-m", "ocactors"]
DATA = Path(__file__).parent / "data" / "failed-mission"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A scripted model on loopback, and git with no configuration of this machine's."""
    config = tmp_path_factory.mktemp("git") / "config"
    config.write_text("[init]\n\tdefaultBranch = main\n[user]\n\tname = U\n\temail = u@x\n")
    with ScriptedModelServer(textstats_playbook().script()) as server:
        yield {
            **os.environ,
            "GIT_CONFIG_GLOBAL": str(config),
            "GIT_CONFIG_NOSYSTEM": "1",
            "OCACTORS_MODEL": "scripted",
            "OCACTORS_BASE_URL": server.base_url,
        }


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> tuple[Path, str]:
    """A repository the mission sealed in (run from inside it), and `task`'s stderr."""
    repo = tmp_path_factory.mktemp("sealed") / "repo"
    repo.mkdir()
    (repo / "notes.md").write_text("the user's notes\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "start"]):
        assert run(env, repo, "git", *args).returncode == 0
    done = run(env, repo, *CLI, "task", "build textstats", "--verify", CHECK)
    assert done.returncode == 0, done.stderr
    return repo, done.stderr


def summary_block(text: str) -> list[str]:
    """The summary: from its `mission <id> WORD:` line to its `log:` line."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if re.match(r"mission \S+ [A-Z]+: ", line))
    last = next(i for i in range(first, len(lines)) if lines[i].startswith("log: "))
    return lines[first : last + 1]


def numstat(env: dict[str, str], repo: Path) -> dict[str, tuple[int, int]]:
    """What git itself says the mission changed: baseline to the mission's ref."""
    paths = list_missions(repo)[0]
    baseline = next(e.commit for e in read_events(paths.events) if isinstance(e, ev.HistoryBegan))
    out = run(env, repo, "git", "diff", "--numstat", f"{baseline}", f"refs/ocactors/{paths.id}")
    counts = {}
    for line in out.stdout.splitlines():
        added, removed, path = line.split("\t")
        counts[path] = (int(added), int(removed))
    return counts


def test_task_ends_with_a_summary_of_everything_that_matters(
    sealed: tuple[Path, str], env: dict[str, str]
) -> None:
    repo, stderr = sealed
    mission = list_missions(repo)[0].id
    block = summary_block(stderr)
    text = "\n".join(block)
    assert block[0] == f"mission {mission} SEALED: every task done, the review approved, " + (
        "the checks passed"
    )
    assert "iterations 2/20, tasks 4 done, 0 failed (of 4), wall time 0m0" in text
    assert f"checks: `{CHECK}` passed in " in text and "(iteration 2)" in text
    tokens = json.loads(run(env, repo, *CLI, "status", "--json").stdout)["tokens"]
    for role, used in tokens.items():
        assert f"{role} {used['prompt'] + used['completion']:,}" in text
    changed = numstat(env, repo)
    assert len(changed) == 4
    assert f"changed 4 file(s), +{sum(a for a, _ in changed.values())} -0:" in text
    for path, (added, removed) in changed.items():
        assert re.search(rf"^\s+created\s+{re.escape(path)} \+{added} -{removed}$", text, re.M)
    after = block[block.index("next:") + 1 : -1]
    assert [line.strip() for line in after] == [
        f"ocactors diff {mission}",
        f"ocactors undo {mission}",
        f"ocactors replay {mission}",
    ]  # sealed: nothing to resume; run in the workspace: no -C
    assert block[-1] == f"log: .opencode/missions/{mission}/events.jsonl"
    assert stderr.count("events.jsonl") == 1 and "Traceback" not in stderr


def test_status_of_a_finished_mission_says_the_same(
    sealed: tuple[Path, str], env: dict[str, str]
) -> None:
    repo, stderr = sealed
    done = run(env, repo, *CLI, "status")
    assert done.returncode == 0, done.stderr
    assert summary_block(done.stdout.split("\n\n", 1)[1]) == summary_block(stderr)


def test_status_json_is_one_object_with_the_summary_and_its_old_keys(
    sealed: tuple[Path, str], env: dict[str, str]
) -> None:
    repo, _ = sealed
    done = run(env, repo, *CLI, "status", "--json")
    assert done.returncode == 0 and done.stdout.count("\n") == 1, done.stdout
    data = json.loads(done.stdout)
    assert set(msgspec.to_builtins(MissionState())) | {"status"} <= set(data)
    summary = data["summary"]
    assert (summary["state"], summary["tasks_done"], summary["tasks_failed"]) == ("sealed", 4, 0)
    files = {f["path"]: (f["added"], f["removed"]) for f in summary["files"]}
    assert files == numstat(env, repo) and summary["history"] == "git"
    assert summary["checks"]["passed"] and summary["checks"]["command"] == CHECK
    totals = {role: t["prompt"] + t["completion"] for role, t in data["tokens"].items()}
    assert {role: t["total"] for role, t in summary["tokens"].items()} == totals
    assert ("cost" in summary) == hasattr(MissionState(), "cost")  # only where it is known
    assert 0 < summary["wall_time_s"] < 60
    assert [c.split()[1] for c in summary["next"]] == ["diff", "undo", "replay"]


def test_from_elsewhere_the_commands_name_the_workspace_and_a_stop_offers_resume(
    tmp_path: Path, env: dict[str, str]
) -> None:
    workspace = tmp_path / "failed"
    shutil.copytree(DATA, workspace)
    done = run(env, tmp_path, *CLI, "status", "-C", str(workspace))
    block = summary_block(done.stdout)
    mission = list_missions(workspace)[0].id
    assert block[0].endswith(
        "STOPPED: no-progress: the review findings repeat the previous iteration's"
    )
    assert f"  ocactors resume {mission} -C {workspace}" in block
    assert f"  ocactors diff {mission} -C {workspace}" in block
    assert block[-1] == f"log: {list_missions(workspace)[0].events}"
    assert "checks: `" in "\n".join(block) and "FAILED (exit 1)" in "\n".join(block)


# --- the mission's own running time -------------------------------------------------------


def fork_of(
    repo: Path, env: dict[str, str], tmp_path: Path, hours_ago: float
) -> tuple[dict[str, str], int]:
    """A copy of the sealed repo whose mission ran ``hours_ago``, forked now; its ls rows."""
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, symlinks=True)
    original = list_missions(copy)[0]
    shift(original.events, timedelta(hours=-hours_ago))
    at = next(e.seq for e in read_events(original.events) if isinstance(e, ev.TaskFinished))
    done = run(env, copy, *CLI, "replay", original.id, "--fork-at", str(at))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in run(env, copy, *CLI, "ls", "--json").stdout.splitlines()]
    return {row["id"]: row["wall_time"] for row in rows}, at


def shift(log: Path, by: timedelta) -> None:
    """Move every event's clock by ``by``."""
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    for event in lines:
        at = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")) + by
        event["ts"] = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    log.write_text("".join(json.dumps(e) + "\n" for e in lines))


def test_a_fork_counts_its_own_time_not_the_originals(
    sealed: tuple[Path, str], env: dict[str, str], tmp_path: Path
) -> None:
    repo, _ = sealed
    times, _ = fork_of(repo, env, tmp_path, hours_ago=2)
    assert len(times) == 2 and all(t.startswith("0m") for t in times.values()), times


def log_at(workspace: Path, timed: Sequence[tuple[float, Event]]) -> None:
    """A mission log whose events happened at the given seconds (from now, negative: ago)."""
    paths = create_mission_dir(workspace, "20260101-000000-abcd")
    with Journal.open(paths.events, mission=paths.id) as journal:
        for _, event in timed:
            journal.append(event, actor="commander")
    now = datetime.now(UTC)
    lines = [json.loads(line) for line in paths.events.read_text().splitlines()]
    for (offset, _), event in zip(timed, lines, strict=True):
        event["ts"] = (now + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    paths.events.write_text("".join(json.dumps(e) + "\n" for e in lines))


STARTED = ev.MissionStarted(version=1, goal="g", workspace="w")
STOPPED = ev.MissionStopped(reason="interrupted", detail="interrupted (Ctrl-C)")
SEALED = ev.MissionSealed(iterations=1, summary="s")
ITERATION = ev.IterationStarted(iteration=1)


def resumed(reason: str = "resume") -> ev.MissionResumed:
    return ev.MissionResumed(pid=1, reason=reason)


TIMELINES = {
    "the pause between stop and resume is not counted": (
        [(-3600, STARTED), (-3596, STOPPED), (-10, resumed()), (-7, SEALED)],
        7,
    ),
    "a fork starts its own clock": (
        [
            (-7200, STARTED),
            (-7190, STOPPED),
            (-7000, resumed()),
            (-6990, ITERATION),
            (-5, resumed("fork of 20250101-000000-aaaa at 4")),
            (-2, SEALED),
        ],
        3,
    ),
    "a killed segment's end is unknown, so it is not counted": (
        [(-3600, STARTED), (-3500, ITERATION), (-9, resumed()), (-4, SEALED)],
        5,
    ),
}


@pytest.mark.parametrize("name", list(TIMELINES))
def test_a_finished_missions_time_is_its_running_time(tmp_path: Path, name: str) -> None:
    timed, seconds = TIMELINES[name]
    log_at(tmp_path, timed)
    state = fold_mission(read_events(list_missions(tmp_path)[0].events))
    assert round(state.active_s) == seconds
    for command in (["ls", "--json"], ["monitor", "--once"], ["status"]):
        done = subprocess.run(
            [*CLI, *command, "-C", str(tmp_path)], capture_output=True, text=True, timeout=30
        )
        assert f"0m{seconds:02d}s" in done.stdout, (command, done.stdout)


def test_a_resumed_mission_still_running_counts_on_from_its_resume(tmp_path: Path) -> None:
    log_at(tmp_path, [(-3600, STARTED), (-3590, STOPPED), (-20, resumed())])
    done = subprocess.run(
        [*CLI, "monitor", "--once", "-C", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    found = re.search(r"elapsed (\d+)m(\d\d)s", done.stdout)
    assert found, done.stdout
    seconds = int(found[1]) * 60 + int(found[2])
    assert 30 <= seconds <= 45  # 10 s before the stop, 20 s (and the time to draw) since resume
