"""A mission's git history on real repositories: the user's HEAD, branch and index untouched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

from ocactors.actors.history import GitHistory, open_history, start_history
from tests._history_helpers import FakeMission, clean_git, dirs, git, ocactors, tree, write

pytestmark = pytest.mark.usefixtures(clean_git.__name__)

USER_LINE = b"# the user's uncommitted line\n"


def dirty_repo(root: Path) -> Path:
    """A repository with every kind of uncommitted work a user may have."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    write(
        root,
        {
            "owned.py": b"def f():\n    return 1\n",
            "other.py": b"x = 1\n",
            "lib.py": b"def g():\n    return 2\n",
            ".gitignore": b"*.log\n",
            "tool.sh": b"#!/bin/sh\necho hi\n",
        },
    )
    (root / "tool.sh").chmod(0o755)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    write(root, {"owned.py": b"def f():\n    return 1\n" + USER_LINE})  # a task owns it
    write(root, {"other.py": b"x = 2  # mine\n"})  # no task owns it
    write(root, {"notes.txt": b"untracked notes\n", "build.log": b"ignored\n"})
    write(root, {"staged.py": b"staged = 1\n"})
    git(root, "add", "staged.py")
    write(root, {"staged.py": b"staged = 2  # not staged\n"})
    return root


def user_state(repo: Path) -> dict[str, object]:
    """Everything of the user's a mission must leave as it was."""
    index = Path(git(repo, "rev-parse", "--git-path", "index").strip())
    return {
        "head": git(repo, "rev-parse", "HEAD", check=False),
        "branch": git(repo, "symbolic-ref", "-q", "HEAD", check=False),
        "index": (repo / index).read_bytes(),
        "cached": git(repo, "diff", "--cached"),
        "stash": git(repo, "stash", "list"),
        "refs": git(repo, "for-each-ref", "--format=%(refname)", "refs/heads", "refs/tags"),
    }


def run_tasks(mission: FakeMission) -> dict[str, str]:
    """Three tasks and a fix task, over a user's file, new files, a deletion, a binary."""
    owned = (mission.workspace / "owned.py").read_bytes()
    return {
        "T1": mission.task("T1", {"owned.py": owned + b"def h():\n    return 3\n"}),
        "T2": mission.task("T2", {"pkg/new.py": b"NEW = 1\n", "lib.py": None}),
        "T3": mission.task(
            "T3", {"data.bin": bytes(range(256)) * 4, "notes.txt": b"edited \xe9 latin-1"}
        ),
        "F1": mission.task("F1", {"owned.py": owned + b"def h():\n    return 4\n"}),
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return dirty_repo(tmp_path / "repo")


def test_tasks_commit_under_the_mission_ref_and_nothing_of_the_users_moves(repo: Path) -> None:
    before = user_state(repo)
    mission = FakeMission(repo)
    commits = run_tasks(mission)
    assert user_state(repo) == before
    log = git(repo, "log", "--format=%H %P%n%B%x00", f"refs/ocactors/{mission.id}")
    records = [r.strip() for r in log.split("\0") if r.strip()]
    assert len(records) == 6  # four tasks, the baseline, the user's first commit
    for record, task in zip(records, ["F1", "T3", "T2", "T1"], strict=False):
        assert record.split()[0] == commits[task]
        assert f"Ocactors-Mission: {mission.id}\nOcactors-Task: {task}" in record
    assert "Ocactors-Baseline: " in records[4]
    assert records[4].split()[1] == str(before["head"]).strip()


def test_the_baseline_holds_the_users_uncommitted_work_and_nothing_ignored(repo: Path) -> None:
    mission = FakeMission(repo)
    assert isinstance(mission.history, GitHistory)
    base = mission.history.baseline()
    assert base is not None
    names = git(repo, "ls-tree", "-r", "--name-only", base).split()
    assert sorted(names) == [
        ".gitignore",
        "lib.py",
        "notes.txt",
        "other.py",
        "owned.py",
        "staged.py",
        "tool.sh",
    ]
    assert git(repo, "show", f"{base}:owned.py").encode().endswith(USER_LINE)
    assert git(repo, "show", f"{base}:staged.py") == "staged = 2  # not staged\n"
    assert "100755 blob" in git(repo, "ls-tree", base, "tool.sh")


def test_missions_never_show_in_git_status_but_other_opencode_files_do(repo: Path) -> None:
    write(repo, {".opencode/commands/review.md": b"# a command the user commits\n"})
    FakeMission(repo)
    FakeMission(repo)
    status = git(repo, "status", "--porcelain", "--untracked-files=all")
    assert ".opencode/missions" not in status
    assert ".opencode/commands/review.md" in status
    exclude = (repo / ".git" / "info" / "exclude").read_text()
    assert exclude.count("/.opencode/missions/") == 1


def test_the_diff_applies_to_a_checkout_of_the_baseline(repo: Path, tmp_path: Path) -> None:
    mission = FakeMission(repo)
    run_tasks(mission)
    patch = ocactors("diff", "-C", str(repo))
    assert patch.returncode == 0, patch.stderr
    checkout = checkout_of(repo, mission, tmp_path / "checkout")
    apply = subprocess.run(
        ["git", "apply", "--check", "-"], input=patch.stdout, cwd=checkout, capture_output=True
    )
    assert apply.returncode == 0, apply.stderr
    subprocess.run(["git", "apply", "-"], input=patch.stdout, cwd=checkout, check=True)
    expected = {k: v for k, v in tree(repo).items() if k != "build.log"}
    assert tree(checkout) == expected


def checkout_of(repo: Path, mission: FakeMission, into: Path) -> Path:
    """The baseline's files in a fresh repository of their own."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", f"refs/ocactors/{mission.id}~4"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout
    into.mkdir()
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="tar")
    git(into, "init", "-q")
    return into


def test_undo_gives_back_the_pre_mission_work_tree_byte_for_byte(repo: Path) -> None:
    before, folders, state = tree(repo), dirs(repo), user_state(repo)
    mission = FakeMission(repo)
    run_tasks(mission)
    mission.write({"half.py": b"written by a task that never finished\n"})
    assert tree(repo) != before
    undone = ocactors("undo", mission.id[:12], "-C", str(repo))
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert tree(repo) == before
    assert dirs(repo) == folders  # pkg/ the mission made is gone too
    assert user_state(repo) == state
    again = ocactors("undo", "-C", str(repo))
    assert again.returncode == 0 and b"0 file(s) put back" in again.stdout


def test_undo_leaves_a_file_changed_after_the_mission_unless_forced(repo: Path) -> None:
    before = tree(repo)
    mission = FakeMission(repo)
    run_tasks(mission)
    (repo / "owned.py").write_bytes(b"the user changed it afterwards\n")
    undone = ocactors("undo", "-C", str(repo))
    assert undone.returncode == 1
    assert b"left     owned.py: changed since the mission wrote it" in undone.stdout
    assert (repo / "owned.py").read_bytes() == b"the user changed it afterwards\n"
    assert (repo / "lib.py").read_bytes() == before["lib.py"][0]  # the rest was restored
    forced = ocactors("undo", "--force", "-C", str(repo))
    assert forced.returncode == 0
    assert tree(repo) == before


def test_undo_of_one_task_keeps_what_a_later_task_changed_again(repo: Path) -> None:
    before = tree(repo)
    mission = FakeMission(repo)
    run_tasks(mission)
    assert ocactors("undo", "--task", "T2", "-C", str(repo)).returncode == 0
    assert (repo / "lib.py").read_bytes() == before["lib.py"][0]
    assert not (repo / "pkg").exists()
    assert (repo / "data.bin").exists()  # T3's work stays
    t1 = ocactors("undo", "--task", "T1", "-C", str(repo))
    assert t1.returncode == 1 and b"changed again later by task F1" in t1.stdout
    assert ocactors("undo", "--task", "F1", "-C", str(repo)).returncode == 0
    assert ocactors("undo", "--task", "T1", "-C", str(repo)).returncode == 0
    assert (repo / "owned.py").read_bytes() == before["owned.py"][0]


def test_a_task_diff_is_its_commit_against_its_parent(repo: Path) -> None:
    mission = FakeMission(repo)
    run_tasks(mission)
    one = mission.history.diff(task="T2")
    assert "pkg/new.py" in one and "lib.py" in one and "owned.py" not in one
    changes = {c.path: (c.kind, c.added, c.removed) for c in mission.history.changes()}
    assert changes == {
        "data.bin": ("created", 0, 0),
        "lib.py": ("deleted", 0, 2),
        "notes.txt": ("modified", 1, 1),
        "owned.py": ("modified", 2, 0),
        "pkg/new.py": ("created", 1, 0),
    }
    assert mission.history.user_changed(["owned.py", "lib.py", "notes.txt"]) == [
        "notes.txt",
        "owned.py",
    ]


CHILD = """
import os, signal, sys
from pathlib import Path
from ocactors.actors.history import start_history
from ocactors.events import create_mission_dir
workspace, mission = Path(sys.argv[1]), sys.argv[2]
paths = create_mission_dir(workspace, mission)
history = start_history(workspace, paths.root, mission)
(workspace / "owned.py").write_text("task output\\n")
history.commit_task("T1", "the task", ["owned.py"])
os.kill(os.getpid(), signal.SIGKILL)  # dead before the log could say task.committed
"""


def test_a_kill_after_the_commit_then_a_resume_gives_one_commit_per_task(repo: Path) -> None:
    mission_id = "20260101-000000-kill"
    child = subprocess.run([sys.executable, "-c", CHILD, str(repo), mission_id], timeout=60)
    assert child.returncode == -signal.SIGKILL
    ref = f"refs/ocactors/{mission_id}"
    # a git killed mid-way leaves its locks behind
    (repo / ".git" / f"{ref}.lock").write_text("")
    mission_dir = repo / ".opencode" / "missions" / mission_id
    (mission_dir / "history" / "index.lock").write_text("")
    history = start_history(repo, mission_dir, mission_id)
    first = git(repo, "rev-parse", ref).strip()
    assert history.commit_task("T1", "the task", ["owned.py"]) == first
    assert git(repo, "rev-list", "--count", f"{ref}~1..{ref}").strip() == "1"
    write(repo, {"lib.py": b"T2\n"})
    assert history.commit_task("T2", "next", ["lib.py"]) != first
    assert history.commit_task("T1", "the task", ["owned.py"]) == first  # still one for T1
    assert [c.task_id for c in history.task_commits()] == ["T1", "T2"]


def test_a_resume_continues_the_same_ref(repo: Path) -> None:
    mission = FakeMission(repo)
    first = mission.task("T1", {"owned.py": b"one\n"})
    again = start_history(repo, mission.paths.root, mission.id)
    assert isinstance(again, GitHistory)
    assert again.task_commits()[0].commit == first
    assert git(repo, "rev-list", "--count", f"refs/ocactors/{mission.id}").strip() == "3"


def test_a_linked_worktree_and_a_subfolder_workspace(repo: Path, tmp_path: Path) -> None:
    git(repo, "commit", "-qam", "save")
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(linked))
    workspace = linked / "sub"
    write(workspace, {"mod.py": b"a = 1\n"})
    before = tree(workspace)
    mission = FakeMission(workspace)
    assert mission.history.reason is None
    mission.task("T1", {"mod.py": b"a = 2\n", "deep/new.py": b"b = 1\n"})
    diff = mission.history.diff()
    assert "a/mod.py" in diff and "b/deep/new.py" in diff and "sub/" not in diff
    assert "sub/.opencode" not in git(linked, "status", "--porcelain", "--untracked-files=all")
    exclude = (repo / ".git" / "info" / "exclude").read_text()
    assert "/sub/.opencode/missions/" in exclude.splitlines()
    assert git(repo, "rev-parse", "--verify", f"refs/ocactors/{mission.id}")  # shared refs
    assert open_history(workspace, mission.paths.root, mission.id).undo().complete
    assert tree(workspace) == before


def test_detached_head_unborn_branch_signing_and_odd_names(tmp_path: Path) -> None:
    repo = dirty_repo(tmp_path / "detached")
    git(repo, "checkout", "-q", "--detach")
    git(repo, "config", "commit.gpgSign", "true")
    git(repo, "config", "gpg.program", "false")  # signing would fail: we never sign
    assert FakeMission(repo).history.kind == "git"
    unborn = tmp_path / "unborn"
    unborn.mkdir()
    git(unborn, "init", "-q")
    write(unborn, {"a file ü.txt": b"x\n"})
    before = tree(unborn)
    mission = FakeMission(unborn)
    mission.task("T1", {"a file ü.txt": b"y\n"})
    mission.recorder("link")
    os.symlink("a file ü.txt", unborn / "link")
    mission.history.commit_task("T2", "a link", ["link"])
    assert mission.history.undo().complete
    assert tree(unborn) == before


def conflicted(root: Path, how: str) -> Path:
    """A repository stopped in the middle of a merge, cherry-pick or rebase, with conflicts."""
    repo = dirty_repo(root)
    git(repo, "stash", "-q", "-u")
    if how == "stash":  # conflicts in the index, and no operation under way
        write(repo, {"owned.py": b"ours\n"})
        git(repo, "commit", "-qam", "ours")
        git(repo, "stash", "pop", check=False)
        return repo
    git(repo, "checkout", "-q", "-b", "theirs")
    write(repo, {"owned.py": b"theirs\n"})
    git(repo, "commit", "-qam", "theirs")
    git(repo, "checkout", "-q", "main")
    write(repo, {"owned.py": b"ours\n"})
    git(repo, "commit", "-qam", "ours")
    git(repo, how, "theirs", check=False)
    return repo


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("merge", "a merge is in progress"),
        ("cherry-pick", "a cherry-pick is in progress"),
        ("rebase", "a rebase"),
        ("stash", "the index has unresolved conflicts"),
    ],
)
def test_a_repository_in_the_middle_of_an_operation_falls_back(
    tmp_path: Path, how: str, said: str
) -> None:
    repo = conflicted(tmp_path / "repo", how)
    before, state = tree(repo), user_state(repo)
    mission = FakeMission(repo)
    assert mission.history.kind == "files"
    assert said in (mission.history.reason or "")
    mission.task("T1", {"new.py": b"n = 1\n", "other.py": b"changed\n"})
    assert git(repo, "for-each-ref", "refs/ocactors") == ""
    assert "new.py" in mission.history.diff()
    assert mission.history.undo().complete
    assert tree(repo) == before and user_state(repo) == state
    git(repo, "reset", "-q") if how == "stash" else git(repo, how, "--abort")
    resumed = start_history(repo, mission.paths.root, mission.id)
    assert resumed.kind == "files"  # what it wrote is not in git: it keeps its file history


def test_a_bare_repository_falls_back(tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    mission = FakeMission(bare)
    assert mission.history.reason == "a bare repository has no work tree"
    mission.task("T1", {"file.txt": b"x\n"})
    assert mission.history.undo().complete and not (bare / "file.txt").exists()


def test_without_git_on_path_the_file_history_is_used(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    before = tree(repo)
    empty = tmp_path / "no-git"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    mission = FakeMission(repo)
    assert mission.history.reason == "git is not installed (not on PATH)"
    mission.task("T1", {"owned.py": b"replaced\n"})
    reader = open_history(repo, mission.paths.root, mission.id)
    assert reader.kind == "files" and "owned.py" in reader.diff()
    assert reader.undo().complete
    assert tree(repo) == before


def test_an_ignored_file_a_task_rewrites_comes_back_instead_of_being_removed(repo: Path) -> None:
    before = tree(repo)
    mission = FakeMission(repo)
    mission.task("T1", {"build.log": b"rewritten by the task\n"})  # ignored: not in the baseline
    assert "build.log" in mission.history.diff()
    assert mission.history.undo().complete
    assert tree(repo) == before
