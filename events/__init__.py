"""The event log: the one source of truth of a mission, under ``.opencode/``.

- :mod:`~ocactors.events.catalogue`: every event, one tagged union;
- :class:`Journal`: the single writer (lock, group commit, redaction, torn-tail repair, and a
  guard that notices anyone else changing the file);
- :func:`read_events`, :func:`fold`, :func:`state_at`, :func:`follow`: reading, rebuilding
  state, time travel and following a live log, without ever blocking the writer;
- layout and control: where missions live and how other processes talk to one.

Errors are drawn in :mod:`ocactors.events.errors`.  This package imports nothing else of ours.
"""

from ocactors.events.catalogue import (
    FORMAT_VERSION,
    AnyEvent,
    Event,
    Record,
    UnknownEvent,
    event_type,
)
from ocactors.events.codec import decode, encode
from ocactors.events.control import ControlCommand, ControlInbox, send_control
from ocactors.events.errors import (
    AmbiguousMissionError,
    CorruptLogError,
    EventLogError,
    LogLockedError,
    LogTamperedError,
    LogUnavailableError,
    MissionNotFoundError,
)
from ocactors.events.fold import fold, state_at
from ocactors.events.follow import follow
from ocactors.events.journal import Durability, Journal, Receipt
from ocactors.events.layout import (
    MissionPaths,
    create_mission_dir,
    list_missions,
    missions_dir,
    new_mission_id,
    resolve_mission,
    writer_pid,
)
from ocactors.events.reader import CorruptLine, newer_format, read_events
from ocactors.events.redact import DEFAULT_SECRET_ENV_VARS, REDACTED, Redactor

__all__ = [
    "DEFAULT_SECRET_ENV_VARS",
    "FORMAT_VERSION",
    "REDACTED",
    "AmbiguousMissionError",
    "AnyEvent",
    "ControlCommand",
    "ControlInbox",
    "CorruptLine",
    "CorruptLogError",
    "Durability",
    "Event",
    "EventLogError",
    "Journal",
    "LogLockedError",
    "LogTamperedError",
    "LogUnavailableError",
    "MissionNotFoundError",
    "MissionPaths",
    "Receipt",
    "Record",
    "Redactor",
    "UnknownEvent",
    "create_mission_dir",
    "decode",
    "encode",
    "event_type",
    "fold",
    "follow",
    "list_missions",
    "missions_dir",
    "new_mission_id",
    "newer_format",
    "read_events",
    "resolve_mission",
    "send_control",
    "state_at",
    "writer_pid",
]
