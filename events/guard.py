"""What the writer knows of its file, to notice anyone else changing it.

The journal is the only writer of ``events.jsonl``.  It knows the file's inode and, byte for
byte, how long the file is (its size after repair plus every byte it wrote since).  Before it
writes, :meth:`FileGuard.check` compares that with ``fstat`` of its open descriptor (was the
file truncated or written to?) and ``stat`` of the path (is the file at the path still the one
it holds open?): two system calls, ~4 µs, once per group commit.  A same-size rewrite in place
is not seen (that would need the content); the sandbox keeps ``.opencode`` read-only for
commands, this guard is for everything else.
"""

from __future__ import annotations

import os
from pathlib import Path

from ocactors.events.errors import LogTamperedError


class FileGuard:
    """The inode and size the writer expects; :meth:`check` says what changed behind its back."""

    __slots__ = ("fd", "identity", "path", "size")

    def __init__(self, path: Path, fd: int) -> None:
        stat = os.fstat(fd)
        self.path = path
        self.fd = fd
        self.identity = (stat.st_dev, stat.st_ino)
        self.size = stat.st_size

    def wrote(self, count: int) -> None:
        """The writer appended ``count`` bytes."""
        self.size += count

    def check(self) -> LogTamperedError | None:
        """None while the file is as the writer left it; otherwise how it changed."""
        size = os.fstat(self.fd).st_size
        if size < self.size:
            detail = f"truncated to {size:,} bytes (its writer wrote {self.size:,})"
            return self._changed("truncated", detail)
        if size > self.size:
            detail = f"{size - self.size:,} bytes appended that its writer did not write"
            return self._changed("appended", detail)
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return self._changed("deleted", "deleted")
        except OSError:
            return None  # unreadable path: the next write says what is wrong
        if (stat.st_dev, stat.st_ino) != self.identity:
            return self._changed("replaced", "replaced by another file")
        return None

    def _changed(self, how: str, detail: str) -> LogTamperedError:
        return LogTamperedError(self.path, how, detail)
