"""Building a mission's history the way the Commander will: real repositories, real files.

A ``FakeMission`` writes files through the same ``BaselineRecorder`` the tools call before a
write, and commits each finished task through the history API, so the tests need no model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from ocactors.actors.history import History, start_history
from ocactors.actors.mission import BaselineRecorder
from ocactors.events import MissionPaths, create_mission_dir, new_mission_id

CLI = [sys.executable, "-m", "ocactors.cli"]
SKIP = {".git", ".opencode"}


@pytest.fixture
def clean_git(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No global or system git configuration leaks into a test (nor out of one)."""
    config = tmp_path_factory.mktemp("gitconfig") / "config"
    config.write_text("[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


def git(repo: Path, *args: str, check: bool = True) -> str:
    """Run git as a user would (with an identity for the user's own commits)."""
    done = subprocess.run(
        ["git", "-c", "user.name=User", "-c", "user.email=user@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def write(root: Path, files: Mapping[str, bytes | None]) -> None:
    """Write (or delete, for None) files under ``root``."""
    for rel, data in files.items():
        path = root / rel
        if data is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def tree(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file under ``root`` (outside .git and .opencode): bytes and exec bit."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP]
        for name in files:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = (os.fsencode(os.readlink(path)), False)
            else:
                found[rel] = (path.read_bytes(), os.access(path, os.X_OK))
    return found


def dirs(root: Path) -> set[str]:
    """Every folder under ``root`` (outside .git and .opencode)."""
    found: set[str] = set()
    for folder, subdirs, _ in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in SKIP]
        found.update((Path(folder) / d).relative_to(root).as_posix() for d in subdirs)
    return found


class FakeMission:
    """A mission's folder, its file baseline and its history, driven directly."""

    def __init__(self, workspace: Path, mission_id: str | None = None) -> None:
        self.workspace = workspace
        self.paths: MissionPaths = create_mission_dir(workspace, mission_id or new_mission_id())
        self.recorder = BaselineRecorder(workspace, self.paths.baseline)
        self.history: History = start_history(workspace, self.paths.root, self.paths.id)

    @property
    def id(self) -> str:
        """The mission id."""
        return self.paths.id

    def write(self, files: Mapping[str, bytes | None]) -> None:
        """Write as a worker does: the baseline copy is taken before the first write."""
        for rel in files:
            self.recorder(rel)
        write(self.workspace, files)

    def task(self, task_id: str, files: Mapping[str, bytes | None], title: str = "") -> str:
        """A task that writes ``files`` and is accepted: its commit."""
        self.write(files)
        return self.history.commit_task(task_id, title or f"task {task_id}", list(files))


def ocactors(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """The command line, as a user runs it."""
    return subprocess.run([*CLI, *args], capture_output=True, timeout=60, cwd=cwd)
