"""A whole mission in a user's dirty git repository: a commit per task, nothing of theirs moved.

The textstats mission (three parallel-ready tasks, a rejecting review, a fix task) runs in a
real repository whose work tree holds the user's uncommitted edits, one of them in a file a
task owns.  Afterwards the user's HEAD, branch and index are as they were, the mission's ref
holds the baseline and one commit per task with its trailers, ``ocactors diff`` applies to the
baseline, ``ocactors undo`` gives the pre-mission work tree back byte for byte, and
``git status`` never shows the mission's folder.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from ocactors.actors.models import ScriptedModelServer
from ocactors.events import catalogue as ev
from ocactors.events import read_events
from tests._history_helpers import CLI, clean_git, git, tree
from tests._mission_helpers import CORE_FIXED, MissionHarness, textstats_playbook

__all__ = ["clean_git"]

USER_CORE = b"# the user's own draft, not committed\n"


def dirty_repository(root: Path) -> None:
    """Committed files, then the user's uncommitted work on top (one file a task owns)."""
    root.mkdir()
    git(root, "init", "-q")
    (root / "textstats").mkdir()
    (root / "textstats" / "core.py").write_text("# committed core\n")
    (root / "notes.md").write_text("committed notes\n")
    (root / ".gitignore").write_text("*.log\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    (root / "textstats" / "core.py").write_bytes(USER_CORE)  # a task will own this file
    (root / "notes.md").write_text("committed notes\nthe user's uncommitted line\n")
    (root / "scratch.txt").write_text("untracked\n")
    (root / "debug.log").write_text("ignored\n")


def user_view(root: Path) -> dict[str, str]:
    return {
        "head": git(root, "rev-parse", "HEAD"),
        "branch": git(root, "symbolic-ref", "HEAD"),
        "index": git(root, "write-tree"),
        "staged": git(root, "diff", "--cached"),
        "stash": git(root, "stash", "list"),
    }


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args, "-C", str(root)], capture_output=True, text=True, timeout=60, check=False
    )


def test_a_mission_in_a_dirty_repository(tmp_path: Path, clean_git: None) -> None:
    root = tmp_path / "repo"
    dirty_repository(root)
    before, files_before = user_view(root), tree(root)
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = MissionHarness(root, server)
        state = harness.start()
    assert state.phase == "sealed", state.detail
    assert harness.paths is not None
    mission = harness.paths.id
    assert user_view(root) == before
    assert ".opencode" not in git(root, "status", "--porcelain", "--untracked-files=all")

    log = git(root, "log", "--format=%H%n%B%x00", f"refs/ocactors/{mission}").split("\0")
    tasks = [
        line.split(": ", 1)[1]
        for record in log
        for line in record.splitlines()
        if line.startswith("Ocactors-Task: ")
    ]
    assert Counter(tasks) == Counter({"T1": 1, "T2": 1, "T3": 1, "F1": 1})
    assert all(f"Ocactors-Mission: {mission}" in r for r in log if "Ocactors-Task" in r)
    events = list(read_events(harness.paths.events))
    committed = {e.task_id: e.commit for e in events if isinstance(e, ev.TaskCommitted)}
    assert set(committed) == {"T1", "T2", "T3", "F1"}
    began = next(e for e in events if isinstance(e, ev.HistoryBegan))
    assert began.kind == "git" and began.ref == f"refs/ocactors/{mission}"
    baseline = began.commit
    assert baseline is not None
    assert git(root, "show", f"{baseline}:textstats/core.py").encode() == USER_CORE

    brief = next(
        e for e in events if isinstance(e, ev.SessionStarted) and e.session == "worker:T1#1"
    )
    assert "textstats/core.py" in brief.messages[1].content  # told: the user's lines
    assert "uncommitted changes" in brief.messages[1].content

    diff = run_cli(root, "diff", mission)
    assert diff.returncode == 0 and "+++ b/textstats/core.py" in diff.stdout
    check = tmp_path / "check"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(check), baseline], cwd=root)
    applied = subprocess.run(["git", "apply", "--check", "-"], cwd=check, input=diff.stdout,
                             text=True, capture_output=True)  # fmt: skip
    assert applied.returncode == 0, applied.stderr

    assert (root / "textstats" / "core.py").read_text() == CORE_FIXED
    undone = run_cli(root, "undo", mission)
    assert undone.returncode == 0, undone.stderr
    assert tree(root) == files_before
    assert user_view(root) == before


def test_a_kill_between_a_tasks_end_and_its_commit_gives_one_commit(
    tmp_path: Path, clean_git: None
) -> None:
    """The log cut right after T1's session ended (before task.committed): resume commits once."""
    root = tmp_path / "repo"
    dirty_repository(root)
    with ScriptedModelServer(textstats_playbook().script()) as server:
        harness = MissionHarness(root, server)
        harness.start()
        assert harness.paths is not None
        lines = harness.paths.events.read_bytes().splitlines(keepends=True)
        end = next(
            i
            for i, line in enumerate(lines)
            if b'"session.finished"' in line and b'"worker:T1#1"' in line
        )
        harness.paths.events.write_bytes(b"".join(lines[: end + 1]))  # killed right here
        state = harness.resume()
    assert state.phase == "sealed", state.detail
    log = git(root, "log", "--format=%B", f"refs/ocactors/{harness.paths.id}")
    assert log.count("Ocactors-Task: T1\n") == 1
    assert log.count("Ocactors-Task: F1\n") == 1
