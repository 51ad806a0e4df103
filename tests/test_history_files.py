"""A mission's history outside git: the file baseline, task snapshots, git-style diffs, undo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ocactors.actors.history import FileHistory, HistoryError, open_history
from tests._history_helpers import FakeMission, clean_git, tree, write

pytestmark = pytest.mark.usefixtures(clean_git.__name__)

BINARY = bytes(range(256)) * 8


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A plain folder (no repository above it) with text, binary and executable files."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "plain"
    write(
        root,
        {
            "app.py": b"".join(b"line %d\n" % i for i in range(30)),
            "tail.txt": b"first\nno newline at the end",
            "image.bin": BINARY,
            "gone.txt": b"to be deleted\n",
            "run.sh": b"#!/bin/sh\n",
        },
    )
    (root / "run.sh").chmod(0o755)
    return root


def run_tasks(mission: FakeMission) -> None:
    """Edits, a creation, a deletion, binaries, a missing final newline, an empty file."""
    app = (mission.workspace / "app.py").read_bytes().replace(b"line 3\n", b"line three\n")
    mission.task("T1", {"app.py": app + b"line 30\n", "tail.txt": b"first\nchanged end"})
    mission.task("T2", {"image.bin": BINARY[::-1], "new.bin": b"\0\1\2", "gone.txt": None})
    mission.task("T3", {"empty.txt": b"", "pkg/mod.py": b"x = 1\n", "app.py": app})


def test_outside_git_the_file_history_says_why(folder: Path) -> None:
    mission = FakeMission(folder)
    assert isinstance(mission.history, FileHistory)
    assert mission.history.reason == "not a git work tree"
    mission.history.begin()  # nothing to begin without git


def test_the_diff_applies_to_the_folder_as_it_was(folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    mission = FakeMission(folder)
    run_tasks(mission)
    patch = mission.history.diff().encode(errors="surrogateescape")
    assert b"GIT binary patch" in patch and b"\\ No newline at end of file" in patch
    check = subprocess.run(
        ["git", "apply", "--check", "-"], input=patch, cwd=copy, capture_output=True
    )
    assert check.returncode == 0, check.stderr
    subprocess.run(["git", "apply", "-"], input=patch, cwd=copy, check=True)
    assert tree(copy) == tree(folder)


def test_a_task_diff_is_that_task_against_what_came_before(folder: Path, tmp_path: Path) -> None:
    mission = FakeMission(folder)
    run_tasks(mission)
    t3 = mission.history.diff(task="T3")
    assert "+x = 1" in t3 and "-line 30" in t3 and "image.bin" not in t3
    stat = mission.history.diff(stat=True)
    assert " app.py     | +1 -1 (modified)" in stat
    assert " gone.txt   | +0 -1 (deleted)" in stat
    assert " new.bin    | +0 -0 (created)" in stat
    with pytest.raises(HistoryError, match=r"no record of task 'T9' \(T1, T2, T3\)"):
        mission.history.diff(task="T9")


def test_undo_gives_back_the_folder_byte_for_byte(folder: Path) -> None:
    before = tree(folder)
    mission = FakeMission(folder)
    run_tasks(mission)
    mission.write({"half.py": b"an unfinished task wrote this\n"})
    report = open_history(folder, mission.paths.root, mission.id).undo()
    assert report.complete, report.kept
    assert tree(folder) == before
    assert not (folder / "pkg").exists()


def test_undo_names_a_file_changed_after_the_mission(folder: Path) -> None:
    before = tree(folder)
    mission = FakeMission(folder)
    run_tasks(mission)
    (folder / "tail.txt").write_bytes(b"edited by hand afterwards\n")
    report = mission.history.undo()
    assert report.kept == [
        ("tail.txt", "changed since the mission wrote it (use --force to restore anyway)")
    ]
    assert (folder / "tail.txt").read_bytes() == b"edited by hand afterwards\n"
    assert mission.history.undo(force=True).complete
    assert tree(folder) == before


def test_undo_of_one_task(folder: Path) -> None:
    before = tree(folder)
    mission = FakeMission(folder)
    run_tasks(mission)
    assert mission.history.undo(task="T2").complete
    assert (folder / "gone.txt").exists() and not (folder / "new.bin").exists()
    assert (folder / "image.bin").read_bytes() == BINARY
    t1 = mission.history.undo(task="T1")
    assert t1.kept == [
        ("app.py", "changed again later by task T3 (undo that first, or use --force)")
    ]
    assert (folder / "tail.txt").read_bytes() == before["tail.txt"][0]  # T1's other file
    assert mission.history.undo(task="T3").complete
    assert mission.history.undo(task="T1").complete
    assert tree(folder) == before


def test_a_snapshot_is_taken_once_even_after_a_kill(folder: Path) -> None:
    mission = FakeMission(folder)
    first = mission.task("T1", {"app.py": b"one\n"})
    assert mission.history.commit_task("T1", "again after a resume", ["app.py"]) == first
    stale = mission.paths.root / "history" / "tasks" / "tmp-0002"
    write(stale, {"files/app.py": b"half"})  # a kill in the middle of the next snapshot
    second = mission.task("T2", {"app.py": b"two\n"})
    assert second == "files:0002" and not stale.exists()
    assert [c.task_id for c in mission.history.task_commits()] == ["T1", "T2"]


def test_a_file_without_a_baseline_copy_is_named_not_guessed(folder: Path) -> None:
    mission = FakeMission(folder)
    write(folder, {"app.py": b"written around the tools\n"})  # no copy was taken first
    mission.history.commit_task("T1", "t", ["app.py"])
    assert "app.py" not in mission.history.diff()
    report = mission.history.undo()
    assert report.kept == [("app.py", "its content before the mission was not recorded")]
    assert (folder / "app.py").read_bytes() == b"written around the tools\n"
