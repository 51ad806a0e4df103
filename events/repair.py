"""Opening a log after a crash: every complete event is kept, a torn last line moves aside.

A crash (or a full disk) can leave a torn last line; :func:`repair` moves those bytes to
``events.jsonl.torn-<n>``, keeps every complete event and says so once on stderr.  A corrupt
complete line in the middle is never skipped: it raises :class:`CorruptLogError` with the line
number, because what follows it can no longer be trusted to be the mission's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ocactors.events.codec import LineError, decode
from ocactors.events.errors import CorruptLogError
from ocactors.events.reader import iter_lines


def repair(path: Path, fd: int) -> int:
    """Check every line; cut a torn tail off into ``.torn-<n>``; return the last seq."""
    last_seq, good_end, last_line_no, bad = 0, 0, 0, None
    for line_no, (end, line) in enumerate(iter_lines(path), start=1):
        if not line.strip():  # readers skip blank lines too
            good_end = end if bad is None else good_end
            continue
        if bad is not None:
            raise CorruptLogError(path, bad[0], bad[1])
        try:
            event = decode(line)
        except LineError as error:
            bad = (line_no, str(error))
            continue
        last_seq, good_end, last_line_no = event.seq, end, line_no
    size = os.fstat(fd).st_size
    if size > good_end:
        move_torn_tail(path, fd, good_end, size, last_line_no)
    return last_seq


def move_torn_tail(path: Path, fd: int, good_end: int, size: int, last_line_no: int) -> None:
    n = 1
    while path.with_name(f"{path.name}.torn-{n}").exists():
        n += 1
    torn = path.with_name(f"{path.name}.torn-{n}")
    with open(path, "rb") as source:
        source.seek(good_end)
        torn.write_bytes(source.read(size - good_end))
    os.ftruncate(fd, good_end)
    os.fsync(fd)
    print(
        f"ocactors: {path}: repaired a torn tail after line {last_line_no} "
        f"({size - good_end} bytes moved to {torn.name})",
        file=sys.stderr,
    )
