"""git as the mission history uses it: finding the work tree, running plumbing commands.

Every command runs at the top of the work tree with the user's environment minus what would
point git elsewhere (``GIT_DIR``, ``GIT_INDEX_FILE``...), in the C locale, never prompting,
and with ``GIT_OPTIONAL_LOCKS=0`` so that reading never rewrites the user's index.  Commits
made here are authored by ``ocactors`` (the agents wrote them, and a user without an identity
configured can still run a mission).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ocactors.actors.history_model import HistoryError, clean_rel

MIN_VERSION = (2, 20)
TIMEOUT_S = 600.0
IDENTITY = {"NAME": "ocactors", "EMAIL": "ocactors@localhost"}
DROPPED = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")


class GitError(HistoryError):
    """A git command failed; the message holds its first line of complaint."""


@dataclass(frozen=True)
class Git:
    """Runs git in one work tree, with the user's environment minus what would redirect it."""

    exe: str
    top: Path

    def __call__(
        self, *args: str, index: Path | None = None, stdin: bytes = b"", check: bool = True
    ) -> bytes:
        """git's stdout; a failure is a :class:`GitError` (unless ``check`` is off)."""
        try:
            done = subprocess.run(
                [self.exe, *args],
                cwd=self.top,
                input=stdin,
                capture_output=True,
                env=self._env(index),
                timeout=TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise GitError(f"git {args[0]} could not run: {error}") from None
        if check and done.returncode != 0:
            said = done.stderr.decode(errors="replace").splitlines()
            worst = [s for s in said if s.startswith(("fatal:", "error:"))] or said or ["?"]
            raise GitError(f"git {args[0]} failed: {worst[0].strip()}")
        return done.stdout

    def text(self, *args: str, index: Path | None = None, check: bool = True) -> str:
        """git's stdout as one stripped line of text."""
        return self(*args, index=index, check=check).decode(errors="surrogateescape").strip()

    def _env(self, index: Path | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in DROPPED}
        env.update(LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
        for who in ("AUTHOR", "COMMITTER"):
            for part, value in IDENTITY.items():
                env[f"GIT_{who}_{part}"] = value
        if index is not None:
            env["GIT_INDEX_FILE"] = str(index)
        return env


@dataclass(frozen=True)
class Repo:
    """A work tree git can be used in, and where the workspace sits inside it."""

    git: Git
    prefix: str  # the workspace relative to the top of the work tree, "" or "sub/dir/"

    def path(self, rel: str) -> str:
        """A workspace-relative path as git sees it (relative to the top)."""
        return self.prefix + clean_rel(rel)

    def rel(self, path: str) -> str:
        """A top-relative path back to workspace-relative."""
        return path[len(self.prefix) :]

    def git_path(self, name: str) -> Path:
        """A file of the repository (``info/exclude``, ``MERGE_HEAD``), worktrees included."""
        return self.git.top / self.git.text("rev-parse", "--git-path", name)


def find_repo(workspace: Path) -> Repo | str:
    """The repository of ``workspace``, or a one-line reason why git cannot be used there."""
    exe = shutil.which("git")
    if exe is None:
        return "git is not installed (not on PATH)"
    probe = Git(exe, workspace)
    version = _version(probe.text("--version", check=False))
    if version < MIN_VERSION:
        return f"git {'.'.join(map(str, version))} is older than 2.20"
    inside = probe.text("rev-parse", "--is-inside-work-tree", check=False)
    if inside != "true":
        bare = probe.text("rev-parse", "--is-bare-repository", check=False) == "true"
        return "a bare repository has no work tree" if bare else "not a git work tree"
    top = Path(probe.text("rev-parse", "--show-toplevel"))
    return Repo(Git(exe, top), probe.text("rev-parse", "--show-prefix"))


def unusable(repo: Repo) -> str | None:
    """Why a new baseline must not be taken now (a merge, a rebase, conflicts), or None."""
    for name, what in (
        ("MERGE_HEAD", "a merge"),
        ("rebase-merge", "a rebase"),
        ("rebase-apply", "a rebase or am"),
        ("CHERRY_PICK_HEAD", "a cherry-pick"),
        ("REVERT_HEAD", "a revert"),
    ):
        if repo.git_path(name).exists():
            return f"{what} is in progress in this repository"
    if repo.git("ls-files", "-u", "-z"):
        return "the index has unresolved conflicts"
    return None


def exclude_missions(repo: Repo) -> None:
    """Hide ``.opencode/missions/`` from ``git status`` through ``info/exclude``, once."""
    line = f"/{repo.prefix}.opencode/missions/"
    exclude = repo.git_path("info/exclude")
    try:
        text = exclude.read_text() if exclude.exists() else ""
        if line in text.splitlines():
            return
        exclude.parent.mkdir(parents=True, exist_ok=True)
        tail = "" if not text or text.endswith("\n") else "\n"
        with exclude.open("a") as out:
            out.write(f"{tail}# ocactors mission logs\n{line}\n")
    except OSError as error:
        raise GitError(f"cannot write {exclude}: {error.strerror}") from None


def _version(said: str) -> tuple[int, int]:
    found = re.search(r"(\d+)\.(\d+)", said)
    return (int(found[1]), int(found[2])) if found else (0, 0)
