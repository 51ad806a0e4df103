"""`ocactors diff` and `ocactors undo` as a user runs them: choosing missions, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._history_helpers import FakeMission, clean_git, git, ocactors, tree, write

pytestmark = pytest.mark.usefixtures(clean_git.__name__)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root, {"a.py": b"a = 1\n", "b.py": b"b = 1\n"})
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    write(root, {"a.py": b"a = 1\na = 2  # uncommitted\n"})
    return root


def test_diff_shows_the_newest_mission_or_the_one_named(repo: Path) -> None:
    old = FakeMission(repo, "20260101-000000-aaaa")
    old.task("T1", {"a.py": b"old mission\n"})
    new = FakeMission(repo, "20260102-000000-bbbb")
    new.task("T1", {"b.py": b"new mission\n"})
    newest = ocactors("diff", "-C", str(repo))
    assert newest.returncode == 0 and b"+new mission" in newest.stdout
    assert b"a.py" not in newest.stdout
    named = ocactors("diff", "20260101", "--stat", "-C", str(repo))
    assert named.stdout == b" a.py | +1 -2 (modified)\n 1 file(s) changed, +1 -2\n"
    assert named.stderr == b""


def test_mistakes_are_one_line_errors_with_exit_2(repo: Path, tmp_path: Path) -> None:
    FakeMission(repo, "20260101-000000-aaaa").task("T1", {"a.py": b"x\n"})
    FakeMission(repo, "20260101-000000-aaab")
    for args, said in [
        (("diff", "2026", "-C", str(repo)), b"'2026' matches 2 missions"),
        (("diff", "zzz", "-C", str(repo)), b"no mission matches 'zzz'"),
        (("undo", "20260101-000000-aaaa", "--task", "T7"), b"no commit for task 'T7' (T1)"),
        (("undo", "-C", str(tmp_path / "empty")), b"is not a directory"),
    ]:
        done = ocactors(*args, cwd=repo)
        assert done.returncode == 2, done
        assert done.stderr.startswith(b"ocactors: error: ") and done.stderr.count(b"\n") == 1
        assert said in done.stderr


def test_undo_exit_codes_and_what_it_says(repo: Path) -> None:
    before = tree(repo)
    mission = FakeMission(repo)
    mission.task("T1", {"a.py": b"task\n", "new.py": b"n\n"})
    mission.task("T2", {"b.py": b"task\n"})
    write(repo, {"b.py": b"the user again\n"})
    left = ocactors("undo", "-C", str(repo))
    assert left.returncode == 1
    assert left.stdout.decode().splitlines() == [
        "restored a.py",
        "removed  new.py",
        "left     b.py: changed since the mission wrote it (use --force to restore anyway)",
        "2 file(s) put back, 0 already as before, 1 left alone",
    ]
    forced = ocactors("undo", "--force", "-C", str(repo))
    assert forced.returncode == 0
    assert forced.stdout == b"restored b.py\n1 file(s) put back, 2 already as before\n"
    assert tree(repo) == before


def test_a_mission_without_git_history_says_so_on_stderr(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    write(folder, {"a.py": b"a\n"})
    mission = FakeMission(folder)
    mission.task("T1", {"a.py": b"b\n"})
    done = ocactors("diff", "-C", str(folder))
    assert done.returncode == 0 and b"-a\n+b\n" in done.stdout
    assert done.stderr.startswith(b"ocactors: note: file history (")


def test_help_lists_both_commands() -> None:
    listed = ocactors("--help").stdout
    assert b"diff" in listed and b"undo" in listed
