"""The workspace a mission works in, and the only door to its files.

Every path a model gives is relative to the workspace.  Absolute paths, ``..`` that climbs
out, and symlinks that lead outside are refused; ``.opencode/`` (the mission log) and ``.git/``
are never touched by tools (at any depth, so a nested repository's hooks are safe too); a worker
writes only the files its lease names.  Resolution follows symlinks before checking, so a link
inside the workspace pointing outside is caught; a path that cannot be resolved (a symlink loop,
a NUL byte) is a tool error, never a crash.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from ocactors.tools.errors import ConfinementError

PRIVATE = (".opencode", ".git")


class Workspace:
    """Resolves model-given paths; ``writable=None`` means a read-only workspace."""

    def __init__(
        self,
        root: Path,
        *,
        writable: Iterable[str] | None = None,
        on_before_write: Callable[[str], None] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.writable = None if writable is None else frozenset(_clean(p) for p in writable)
        self.on_before_write = on_before_write

    def resolve_read(self, rel: str) -> Path:
        """The real path of ``rel`` inside the workspace, for reading."""
        return self._resolve(rel)

    def resolve_write(self, rel: str) -> Path:
        """The real path of ``rel`` for writing: inside the lease, baseline taken first."""
        path = self._resolve(rel)
        relative = self.relative(path)
        if self.writable is None:
            raise ConfinementError("this role cannot write files; it only reads and reports")
        if relative not in self.writable:
            owned = ", ".join(sorted(self.writable)) or "none"
            raise ConfinementError(f"{rel} is not one of your files; you may write only: {owned}")
        if self.on_before_write is not None:
            self.on_before_write(relative)
        return path

    def relative(self, path: Path) -> str:
        """``path`` relative to the root, POSIX style ("." for the root)."""
        return path.relative_to(self.root).as_posix() or "."

    def _resolve(self, rel: str) -> Path:
        if not isinstance(rel, str) or not rel.strip():
            raise ConfinementError("path is empty; give a path relative to the workspace")
        text = rel.strip()
        if os.path.isabs(text) or text.startswith("~"):
            raise ConfinementError(f"{rel} is absolute; give a path relative to the workspace")
        candidate = self._real(rel, text)
        if candidate != self.root and self.root not in candidate.parents:
            raise ConfinementError(f"{rel} leads outside the workspace")
        for part in PurePosixPath(self.relative(candidate)).parts:
            if part.casefold() in PRIVATE:
                raise ConfinementError(f"{rel} is inside {part}/, which tools may not touch")
        return candidate

    def _real(self, rel: str, text: str) -> Path:
        """Every symlink followed; a loop or a NUL byte is the model's to fix, not a crash."""
        try:
            return (self.root / text).resolve()
        except (OSError, RuntimeError, ValueError) as error:
            raise ConfinementError(f"{rel} cannot be resolved: {error}") from None


def _clean(rel: str) -> str:
    return PurePosixPath(os.path.normpath(rel.replace("\\", "/"))).as_posix()
