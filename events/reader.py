"""Reading a log: a streaming iterator in constant memory, with filters.

Readers never lock: a torn last line (no newline yet) is a write in progress and is left for
later, so reading a live log is always safe.  A complete line that is not an event is
corruption: in strict mode it raises :class:`CorruptLogError` with its line number; otherwise it
is reported to ``on_corrupt`` and skipped, so display commands can show what can be read.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ocactors.events.catalogue import (
    FORMAT_VERSION,
    MissionStarted,
    Record,
    UnknownEvent,
    event_type,
)
from ocactors.events.codec import KNOWN, LineError, decode
from ocactors.events.errors import CorruptLogError, LogUnavailableError

CHUNK = 1 << 18


@dataclass(frozen=True, slots=True)
class CorruptLine:
    """A complete line that is not an event."""

    path: Path
    line_no: int
    reason: str


def iter_lines(path: Path, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """Complete lines from byte offset ``start``: (offset after the line, line without \\n)."""
    offset = start
    for lines in _line_chunks(path, start):
        for line in lines:
            offset += len(line) + 1
            yield offset, line


def _line_chunks(path: Path, start: int = 0) -> Iterator[list[bytes]]:
    """The complete lines from ``start``, a chunk's worth at a time (without their \\n)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the generator's finally
    except FileNotFoundError:
        return
    except OSError as error:
        raise LogUnavailableError(f"cannot read {path}: {error.strerror}") from None
    try:
        handle.seek(start)
        pending = list[bytes]()  # pieces of a line longer than a chunk
        while chunk := handle.read(CHUNK):
            if b"\n" not in chunk:
                pending.append(chunk)
                continue
            lines = chunk.split(b"\n")
            lines[0] = b"".join([*pending, lines[0]])
            pending = [lines.pop()]
            yield lines
    finally:
        handle.close()


def read_events(
    path: Path,
    *,
    since: int | None = None,
    until: int | None = None,
    actors: Collection[str] | None = None,
    types: Collection[str] | None = None,
    strict: bool = True,
    on_corrupt: Callable[[CorruptLine], None] | None = None,
) -> Iterator[Record]:
    """Events with ``since < seq <= until`` whose actor and type match the filters."""
    keep = _matcher(actors, types) if actors is not None or types is not None else None
    known = KNOWN.decode  # the common case, without a wrapper's call per line
    line_no = 0
    for lines in _line_chunks(Path(path)):
        for line in lines:
            line_no += 1
            try:
                event = known(line)
            except msgspec.MsgspecError:  # unknown type, corrupt or blank: the careful way
                try:
                    event = _careful(line)
                except LineError as error:
                    _corrupt(CorruptLine(Path(path), line_no, str(error)), strict, on_corrupt)
                    continue
                if event is None:
                    continue
            if since is not None and event.seq <= since:
                continue
            if until is not None and event.seq > until:
                return
            if keep is None or keep(event):
                yield event


def _careful(line: bytes) -> Record | None:
    """None for a blank line (readers and the writer skip those); raises LineError."""
    return decode(line) if line.strip() else None


def newer_format(path: Path) -> bool:
    """Whether a newer ocactors wrote the log, judged by its first event.

    True when ``mission.started`` names a format version above :data:`FORMAT_VERSION`, or the
    first event is of a type this version does not know.  Such a log is still readable (unknown
    events come back as :class:`UnknownEvent`); callers say so once, e.g. in ``status``.
    """
    for event in read_events(path, strict=False):
        if isinstance(event, MissionStarted):
            return event.version > FORMAT_VERSION
        return isinstance(event, UnknownEvent)
    return False


def _corrupt(
    bad: CorruptLine, strict: bool, on_corrupt: Callable[[CorruptLine], None] | None
) -> None:
    if strict:
        raise CorruptLogError(bad.path, bad.line_no, bad.reason)
    if on_corrupt is not None:
        on_corrupt(bad)


def _matcher(
    actors: Collection[str] | None, types: Collection[str] | None
) -> Callable[[Record], bool]:
    def keep(event: Record) -> bool:
        if actors is not None and not any(_actor_matches(event.actor, a) for a in actors):
            return False
        return types is None or event_type(event) in types

    return keep


def _actor_matches(actor: str, pattern: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(actor, pattern)
    return actor == pattern
