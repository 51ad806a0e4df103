"""One mission per workspace at a time: a claim held for as long as a mission runs here.

Two missions in one workspace would overwrite each other's files (their leases know nothing
of each other), so ``task``, ``resume`` and ``replay --fork-at`` claim the workspace before
they create or open anything.  The claim is an exclusive ``flock`` on
``.opencode/missions/.lock`` (inside the folder git never shows), released by the kernel when
the process ends, however it ends; the file names the mission and its pid so the refusal can
say who holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ocactors.common import UsageError
from ocactors.events import missions_dir

LOCK_NAME = ".lock"


class Claim:
    """The held claim; :meth:`name` records which mission holds it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def name(self, mission_id: str) -> None:
        """Say which mission runs here, for anyone refused."""
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{mission_id} {os.getpid()}\n".encode(), 0)


@contextlib.contextmanager
def claim_workspace(workspace: Path) -> Iterator[Claim]:
    """Hold the workspace for one mission; a held claim is a one-line usage error (exit 2)."""
    folder = missions_dir(workspace)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise UsageError(f"cannot use {folder}: {error.strerror}") from None
    try:
        _lock(fd)
        yield Claim(fd)
    finally:
        os.close(fd)  # closing releases the lock


def ensure_unclaimed(workspace: Path) -> None:
    """Refuse early (creating nothing) when a mission already holds the workspace.

    ``task`` asks before it resolves models or starts anything (an OpenCode server), then
    takes the claim for real; the two are a moment apart, and the claim itself decides.
    """
    try:
        fd = os.open(missions_dir(workspace) / LOCK_NAME, os.O_RDWR)
    except OSError:
        return  # no missions folder, no lock file: nobody holds it
    try:
        _lock(fd)
    finally:
        os.close(fd)


def _lock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", errors="replace").split()
        mission, pid = [*holder, "?", "?"][:2]
        raise UsageError(
            f"mission {mission} is running in this workspace (pid {pid}); "
            f"stop it with `ocactors stop {mission}` or wait for it to end"
        ) from None
