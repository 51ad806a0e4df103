"""Snapshots of a mission's fold: a cache that makes ``status`` and ``ls`` fold only the tail.

The log is the truth; a snapshot is the folded :class:`MissionState` of a prefix of it, with
what pins it to that prefix: the byte offset and seq it covers, the log's inode, and a digest
of the last line it folded.  A reader uses a snapshot only when all of those still match the
log (same file, at least that long, the same line where the prefix ends) and the state's
shape is the one this code folds into; otherwise it is ignored and rebuilt.  Deleting one
changes nothing but speed, which a test checks against the full fold at random cut points.

Readers write them (``status`` of a finished mission, then every later look, folds nothing
new), atomically by rename, and never when the log had lines that are not events: a damaged
log is always read whole so the reader can say what it skipped.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import msgspec

from ocactors.actors.state import MissionState, apply
from ocactors.events import MissionPaths
from ocactors.events.catalogue import Record
from ocactors.events.codec import LineError, decode
from ocactors.events.reader import iter_lines

SNAPSHOT_NAME = "snapshot.msgpack"
REWRITE_AFTER = 2_000
"""Events folded past a snapshot before a reader writes a new one."""


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The fold of the log's first ``offset`` bytes (events up to ``seq``)."""

    shape: str
    inode: int
    offset: int
    seq: int
    last_line: str
    """sha256 of the last line folded (its bytes, without the newline)."""
    state: MissionState


@functools.cache
def state_shape() -> str:
    """A digest of MissionState's schema: a snapshot of another shape is never used."""
    schema = msgspec.json.encode(msgspec.json.schema(MissionState))
    return hashlib.sha256(schema).hexdigest()[:16]


def fold_with_snapshot(paths: MissionPaths, on_corrupt: Callable[[int, str], None]) -> MissionState:
    """The whole mission's fold: from a matching snapshot plus the tail, else from the start.

    ``on_corrupt(line_no_in_tail, reason)`` hears of lines that are not events.
    """
    snapshot = load_snapshot(paths)
    state = snapshot.state if snapshot is not None else MissionState()
    offset = snapshot.offset if snapshot is not None else 0
    folded, damaged, last = 0, False, b""
    for line_no, (offset_after, line) in enumerate(iter_lines(paths.events, offset), start=1):
        if not line.strip():
            continue
        try:
            event = decode(line)
        except LineError as error:
            damaged = True
            on_corrupt(line_no, str(error))
            continue
        state, offset, last, folded = apply(state, event), offset_after, line, folded + 1
    if (not damaged and folded >= (REWRITE_AFTER if snapshot else 1)) or (
        not damaged and folded and state.final
    ):
        save_snapshot(paths, state, offset, last)
    return state


def load_snapshot(paths: MissionPaths) -> Snapshot | None:
    """The mission's snapshot if it still describes a prefix of its log, else None."""
    try:
        data = (paths.root / SNAPSHOT_NAME).read_bytes()
        snapshot = msgspec.msgpack.decode(data, type=Snapshot)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    if snapshot.shape != state_shape() or not _still_prefix(paths.events, snapshot):
        return None
    return snapshot


def _still_prefix(log: Path, snapshot: Snapshot) -> bool:
    """Same file, long enough, and the line ending at the offset is the one folded last."""
    try:
        info = log.stat()
        if info.st_ino != snapshot.inode or info.st_size < snapshot.offset:
            return False
        with open(log, "rb") as handle:
            start = max(snapshot.offset - 1 - 1_048_576, 0)
            handle.seek(start)
            before = handle.read(snapshot.offset - start)
    except OSError:
        return False
    if not before.endswith(b"\n"):
        return False
    line = before[:-1].rsplit(b"\n", 1)[-1]
    return hashlib.sha256(line).hexdigest() == snapshot.last_line


def save_snapshot(paths: MissionPaths, state: MissionState, offset: int, last: bytes) -> None:
    """Write the snapshot atomically; a folder we cannot write to just means no cache."""
    with contextlib.suppress(OSError):
        snapshot = Snapshot(
            shape=state_shape(),
            inode=paths.events.stat().st_ino,
            offset=offset,
            seq=state.last_seq,
            last_line=hashlib.sha256(last).hexdigest(),
            state=state,
        )
        target = paths.root / SNAPSHOT_NAME
        temp = target.with_name(f".{SNAPSHOT_NAME}.{os.getpid()}.tmp")
        temp.write_bytes(msgspec.msgpack.encode(snapshot))
        os.replace(temp, target)


class LiveFold:
    """The running mission's whole fold, kept as its events are appended (a subscriber).

    When the mission ends, :meth:`save` writes it as the snapshot, so the first ``status`` or
    ``ls`` after a long mission folds nothing (the runner already read every event once).
    """

    def __init__(self) -> None:
        self.state = MissionState()

    def observe(self, event: Record) -> None:
        """Journal subscriber (and log replayer at start)."""
        self.state = apply(self.state, event)

    def save(self, paths: MissionPaths) -> None:
        """After the journal closed: pin the fold to the log as it stands, but only when the
        log's last line is the last event folded (a failed write, a replaced log: no cache)."""
        last = _last_line(paths.events)
        if last is None or not self.state.last_seq:
            return
        try:
            if decode(last).seq != self.state.last_seq:
                return
        except LineError:
            return
        with contextlib.suppress(OSError):
            save_snapshot(paths, self.state, paths.events.stat().st_size, last)


def _last_line(log: Path) -> bytes | None:
    """The log's last complete line, or None when it does not end with one."""
    try:
        with open(log, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - 1_048_576, 0))
            tail = handle.read()
    except OSError:
        return None
    if not tail.endswith(b"\n"):
        return None
    return tail[:-1].rsplit(b"\n", 1)[-1]
