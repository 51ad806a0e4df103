"""``tail``: a mission's events as readable lines; ``-f`` follows a running mission live.

``--json`` without ``--actor``/``--type`` copies the log's complete lines as they are, in the
kernel (``sendfile``; large blocks where that is not possible): no decoding, no re-encoding, no
flush per line, as fast as ``cat``.  A damaged
line is copied as it is (plain ``tail`` shows what can be read and says what was skipped).  A
reader that goes away (``| head -1``) ends it quietly with exit 0.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ocactors.common import EXIT_OK, UsageError, add_workspace, workspace_of

if TYPE_CHECKING:  # the event log is imported where it is read (see ocactors.cli)
    from ocactors.events import MissionPaths
    from ocactors.events.catalogue import Record

GRACE_S = 1.0
BLOCK = 1 << 20
STYLE = {"mission.sealed": "bold green", "mission.failed": "bold red", "mission.stopped": "yellow"}


def register(sub: Any) -> None:
    """Add tail to the command line."""
    p = sub.add_parser(
        "tail",
        help="print a mission's events; -f follows a running mission",
        description="The mission's events as readable lines (time, seq, actor, type, what "
        "happened). With -f, follow the log live; it ends by itself when the mission ends.",
        epilog="example: ocactors tail -f --actor 'worker:*' --type tool.called",
    )
    p.add_argument("mission", nargs="?", help="mission id or unique prefix (default: newest)")
    add_workspace(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument("--actor", action="append", help="only this actor (patterns: 'worker:*')")
    p.add_argument("--type", action="append", dest="types", help="only this event type")
    p.add_argument("--since", type=int, default=0, metavar="SEQ", help="events after SEQ")
    p.add_argument("--json", action="store_true", help="raw event lines, for jq")
    p.set_defaults(func=run_tail)


class Printer:
    """Prints events that pass the filters, as text (coloured on a terminal) or JSON."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json = args.json
        self.actors = args.actor
        self.types = set(args.types) if args.types else None
        self.console: Any = None
        if sys.stdout.isatty() and not self.json:  # rich only where it is used
            from rich.console import Console

            self.console = Console(highlight=False)
        self.live = False  # following: each line goes out at once

    def __call__(self, event: Record) -> None:
        """Print one event if it passes the filters."""
        if not self._wanted(event):
            return
        if self.json:
            from ocactors.events import encode

            print(encode(event).decode(), flush=self.live)
            return
        from ocactors.describe import line

        if self.console is not None:
            from rich.text import Text

            from ocactors.events.catalogue import event_type

            self.console.print(Text(line(event), style=STYLE.get(event_type(event), "")))
        else:
            print(line(event), flush=self.live)

    @property
    def filters(self) -> bool:
        """Whether events are chosen by actor or type."""
        return bool(self.actors) or self.types is not None

    def _wanted(self, event: Record) -> bool:
        from fnmatch import fnmatchcase

        if self.types is not None:
            from ocactors.events.catalogue import event_type

            if event_type(event) not in self.types:
                return False
        return self.actors is None or any(fnmatchcase(event.actor, a) for a in self.actors)


def run_tail(args: argparse.Namespace) -> int:
    """Print what is there; with -f, go on until the mission ends."""
    from ocactors.events.catalogue import KNOWN_TYPES
    from ocactors.missions import pick

    unknown = sorted(set(args.types or ()) - KNOWN_TYPES)
    if unknown:
        raise UsageError(
            f"unknown event type {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_TYPES))}"
        )
    paths = pick(workspace_of(args), args.mission)
    try:
        _tail(args, paths)
    except BrokenPipeError:  # the reader went away (``| head``): that is how such output ends
        _silence_stdout()
    return EXIT_OK


def _tail(args: argparse.Namespace, paths: MissionPaths) -> None:
    printer = Printer(args)
    if args.json and not printer.filters:
        last, final = _copy_lines(paths.events, args.since)
    else:
        last, final = _print_events(paths, printer, args.since)
    if args.follow:
        printer.live = True
        sys.stdout.flush()
        _follow(paths.events, last, printer, ended=final)


def _print_events(paths: MissionPaths, printer: Printer, since: int) -> tuple[int, bool]:
    """Every event after ``since`` through the printer: (last seq, whether it was final)."""
    from ocactors.events.catalogue import FINAL_TYPES, event_type
    from ocactors.missions import Notes, events

    notes = Notes()
    last, final = since, False
    for event in events(paths, notes, since=since):
        printer(event)
        last, final = event.seq, event_type(event) in FINAL_TYPES
    sys.stdout.flush()
    notes.say(paths)
    return last, final


@functools.cache
def _envelope() -> Any:
    """The decoder of what the raw copy needs to know of a line (made on first use, so that
    importing this module for ``--help`` does not import msgspec)."""
    import msgspec

    class Envelope(msgspec.Struct):
        seq: int = 0
        type: str = ""

    return msgspec.json.Decoder(Envelope)


def _copy_lines(path: Path, since: int) -> tuple[int, bool]:
    """The log's complete lines after ``since``, copied as they are: (last seq, final)."""
    start = _offset_after(path, since) if since > 0 else 0
    try:
        with open(path, "rb") as log:
            end, before = _complete_end(log)
            if end > start:
                _send(log, start, end)
    except FileNotFoundError:
        return since, False
    if end <= start:
        return since, False
    found = _last_event(before)
    return found if found is not None else _last_event_of(path, since)


def _complete_end(log: BinaryIO) -> tuple[int, bytes]:
    """Where the last complete line ends (a torn one is a write in progress), and the bytes
    before that end (at least the last line)."""
    size = os.fstat(log.fileno()).st_size
    begin = size
    while begin > 0:
        begin = max(0, begin - BLOCK)
        log.seek(begin)
        block = log.read(size - begin)
        cut = block.rfind(b"\n")
        if cut >= 0:
            return begin + cut + 1, block[:cut]
    return 0, b""


def _send(log: BinaryIO, start: int, end: int) -> None:
    """Bytes ``start``..``end`` of the log to stdout, in the kernel where it can (sendfile)."""
    sys.stdout.flush()
    try:
        out = sys.stdout.fileno()
        while start < end:
            sent = os.sendfile(out, log.fileno(), start, min(end - start, 1 << 30))
            if not sent:
                break
            start += sent
    except BrokenPipeError:
        raise
    except (OSError, ValueError):  # not a file descriptor, or no sendfile to it: copy blocks
        pass
    _copy_blocks(log, start, end)


def _copy_blocks(log: BinaryIO, start: int, end: int) -> None:
    out = sys.stdout.buffer
    log.seek(start)
    while start < end and (block := log.read(min(BLOCK, end - start))):
        out.write(block)
        start += len(block)
    out.flush()


def _offset_after(path: Path, since: int) -> int:
    """Where the first line with a seq above ``since`` begins (the end if there is none)."""
    from ocactors.events.reader import iter_lines

    begin = 0
    for end, raw in iter_lines(path):
        if _seq_of(raw)[0] > since:
            return begin
        begin = end
    return begin


def _seq_of(raw: bytes) -> tuple[int, str]:
    import msgspec

    try:
        envelope = _envelope().decode(raw)
    except msgspec.DecodeError:
        return 0, ""
    return envelope.seq, envelope.type


def _last_event(copied: bytes) -> tuple[int, bool] | None:
    """The seq and finality of the last readable line of the last block copied."""
    import msgspec

    from ocactors.events.catalogue import FINAL_TYPES

    for raw in reversed(copied[-BLOCK:].split(b"\n")):
        try:
            envelope = _envelope().decode(raw)
        except msgspec.DecodeError:
            continue
        if envelope.seq:
            return envelope.seq, envelope.type in FINAL_TYPES
    return None


def _last_event_of(path: Path, since: int) -> tuple[int, bool]:
    """The slow way, for a last line longer than a block (or nothing readable in it)."""
    from ocactors.events.catalogue import FINAL_TYPES
    from ocactors.events.reader import iter_lines

    last, final = since, False
    for _, raw in iter_lines(path):
        seq, kind = _seq_of(raw)
        if seq > last:
            last, final = seq, kind in FINAL_TYPES
    return last, final


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _follow(path: Any, since: int, printer: Printer, ended: bool) -> None:
    """Follow until a final event is followed by the writer letting go (or no writer)."""
    from ocactors.events import follow

    stop = threading.Event()
    watchdog = threading.Thread(target=_watch_writer, args=(path, stop, ended), daemon=True)
    watchdog.start()
    try:
        for event in follow(path, since=since, stop_event=stop):
            printer(event)
    except KeyboardInterrupt:
        stop.set()


def _watch_writer(path: Any, stop: threading.Event, ended: bool) -> None:
    """Stop following once nobody writes the log and nothing new came for a moment."""
    from ocactors.events import writer_pid

    quiet_since: float | None = None
    while not stop.is_set():
        if writer_pid(path) is None:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= (GRACE_S if ended else 2 * GRACE_S):
                stop.set()
        else:
            quiet_since = None
        time.sleep(0.1)
