"""The event log: schema, single writer, repair, reading, folding, control, redaction."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocactors.events import (
    FORMAT_VERSION,
    ControlInbox,
    CorruptLogError,
    Journal,
    LogLockedError,
    LogUnavailableError,
    MissionPaths,
    Redactor,
    UnknownEvent,
    create_mission_dir,
    decode,
    encode,
    fold,
    newer_format,
    read_events,
    send_control,
    state_at,
    writer_pid,
)
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import AnyEvent, Event, Record, event_type


@pytest.fixture
def paths(tmp_path: Path) -> MissionPaths:
    return create_mission_dir(tmp_path, "20261125-000000-abcd")


def append_n(journal: Journal, n: int, actor: str = "commander") -> None:
    for i in range(n):
        journal.append(ev.IterationStarted(iteration=i + 1), actor=actor)


# --- schema -----------------------------------------------------------------------------

EVENT_CLASSES: list[type[Event]] = list(AnyEvent.__args__)
text = st.text(max_size=20)
small = st.integers(min_value=0, max_value=10_000)


words = st.lists(text, max_size=3)
calls = st.lists(st.builds(ev.ToolCall, id=text, name=text, arguments=text), max_size=2)
for part, strategy in {
    ev.ToolCall: st.builds(ev.ToolCall, id=text, name=text, arguments=text),
    ev.ChatMessage: st.builds(ev.ChatMessage, role=text, content=text, tool_calls=calls),
    ev.TaskSpec: st.builds(ev.TaskSpec, id=text, title=text, files=words, depends_on=words),
    ev.Finding: st.builds(ev.Finding, file=text, problem=text),
    ev.Usage: st.builds(ev.Usage, prompt_tokens=small, completion_tokens=small),
    ev.MissionSettings: st.builds(ev.MissionSettings, verify_command=st.none() | text),
}.items():
    st.register_type_strategy(part, strategy)


def events_of(cls: type[Event]) -> st.SearchStrategy[Event]:
    return st.builds(cls, seq=small, ts=text, mission=text, actor=text)


any_event = st.one_of([events_of(cls) for cls in EVENT_CLASSES])


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(any_event)
def test_every_event_round_trips(event: Event) -> None:
    assert decode(encode(event)) == event


def test_every_event_type_has_a_docstring_and_a_stable_tag() -> None:
    for cls in EVENT_CLASSES:
        assert cls.__doc__ and cls.__doc__.strip()
        assert "." in str(cls.__struct_config__.tag)


def test_unknown_types_are_kept_raw_and_re_encode_the_same() -> None:
    line = (
        b'{"type":"mission.teleported","seq":3,"ts":"t","mission":"m","actor":"a","where":"mars"}'
    )
    event = decode(line)
    assert isinstance(event, UnknownEvent)
    assert (event.type, event.seq, event.raw["where"]) == ("mission.teleported", 3, "mars")
    assert msgspec.json.decode(encode(event)) == msgspec.json.decode(line)


@pytest.mark.parametrize(
    "line", [b"not json", b'{"type":"iteration.started","seq":1}', b"[1,2]", b'{"seq":1}']
)
def test_lines_that_are_not_events_are_refused(line: bytes) -> None:
    from ocactors.events.codec import LineError

    with pytest.raises(LineError):
        decode(line)


def count(state: dict[str, int], event: Record) -> dict[str, int]:
    kind = event_type(event)
    return {**state, kind: state.get(kind, 0) + 1, "last": event.seq}


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_event, max_size=30), st.integers(min_value=0, max_value=30))
def test_a_fold_continued_from_any_prefix_is_the_whole_fold(events: list[Event], cut: int) -> None:
    """``fold`` applies each event once, in order, from ``initial``: folding the rest on top of
    a prefix's fold gives the whole fold, and the count of each type is the events' own."""
    whole = fold(count, dict[str, int](), events)
    assert fold(count, fold(count, dict[str, int](), events[:cut]), events[cut:]) == whole
    for kind in {event_type(e) for e in events}:
        assert whole[kind] == sum(event_type(e) == kind for e in events)


def test_state_at_is_the_fold_of_the_prefix(paths: MissionPaths) -> None:
    with Journal.open(paths.events, mission=paths.id) as journal:
        append_n(journal, 20)
    assert state_at(paths.events, 7, count, dict[str, int]()) == {"iteration.started": 7, "last": 7}


# --- the single writer ------------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from ocactors.events import Journal
journal = Journal.open(Path(sys.argv[1]), mission="m")
print("held", flush=True)
sys.stdin.readline()
journal.close()
"""


def test_a_second_writer_is_refused_naming_the_holder(paths: MissionPaths) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(paths.events)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LogLockedError, match=f"process {holder.pid}"):
            Journal.open(paths.events, mission="m")
        assert writer_pid(paths.events) == holder.pid
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
    assert writer_pid(paths.events) is None
    Journal.open(paths.events, mission="m").close()


def test_the_same_process_cannot_open_twice(paths: MissionPaths) -> None:
    with Journal.open(paths.events, mission="m"), pytest.raises(LogLockedError):
        Journal.open(paths.events, mission="m")


@pytest.mark.parametrize("durability", ["always", "batch", "never"])
def test_every_durability_keeps_every_event_in_order(paths: MissionPaths, durability: str) -> None:
    seen: list[int] = []
    with Journal.open(paths.events, mission="m", durability=durability) as journal:  # type: ignore[arg-type]
        journal.subscribe(lambda e: seen.append(e.seq))
        threads = [threading.Thread(target=append_n, args=(journal, 200)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        receipt = journal.append(ev.IterationStarted(iteration=0), actor="x")
        assert receipt.wait(timeout=10)
    assert [e.seq for e in read_events(paths.events)] == list(range(1, 1602))
    assert seen == list(range(1, 1602))


def test_the_envelope_is_stamped_by_the_journal(paths: MissionPaths) -> None:
    with Journal.open(paths.events, mission="m-1") as journal:
        first = journal.append(ev.IterationStarted(iteration=1), actor="planner").event
        second = journal.append(ev.IterationStarted(iteration=2), actor="x", cause=1).event
    assert (first.seq, first.mission, first.actor, second.cause) == (1, "m-1", "planner", 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first.ts)
    assert first.ts < second.ts
    stamped = datetime.fromisoformat(first.ts.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 5


def test_fifty_waiting_producers_each_see_their_own_event_durable(paths: MissionPaths) -> None:
    answers: list[bool] = []

    def produce() -> None:
        for i in range(20):
            receipt = journal.append(ev.IterationStarted(iteration=i), actor="w")
            answers.append(receipt.wait(timeout=10) and receipt.seq <= journal.durable_seq)

    with Journal.open(paths.events, mission="m") as journal:
        threads = [threading.Thread(target=produce) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        journal.append(ev.IterationStarted(iteration=0), actor="x")  # queued, not waited for
        closing = time.monotonic()
    assert time.monotonic() - closing < 2.0  # close writes what is queued and returns
    assert answers == [True] * 1000
    assert [e.seq for e in read_events(paths.events)] == list(range(1, 1002))


# --- repair and bad input ---------------------------------------------------------------


def test_a_torn_tail_is_moved_aside_once_and_numbering_goes_on(
    paths: MissionPaths, capfd: pytest.CaptureFixture[str]
) -> None:
    with Journal.open(paths.events, mission="m") as journal:
        append_n(journal, 3)
    with open(paths.events, "ab") as log:
        log.write(b'{"type":"iteration.started","seq":4,"ts"')
    with Journal.open(paths.events, mission="m") as journal:
        assert journal.append(ev.IterationStarted(iteration=9), actor="c").seq == 4
    with open(paths.events, "ab") as log:
        log.write(b"garbage that is a whole line but no event\n")
    Journal.open(paths.events, mission="m").close()
    err = capfd.readouterr().err
    assert err.count("repaired a torn tail") == 2 and err.count("\n") == 2
    assert (paths.root / "events.jsonl.torn-1").read_bytes().startswith(b'{"type"')
    assert (paths.root / "events.jsonl.torn-2").exists()
    assert [e.seq for e in read_events(paths.events)] == [1, 2, 3, 4]


def test_a_corrupt_middle_line_is_reported_with_its_number(paths: MissionPaths) -> None:
    with Journal.open(paths.events, mission="m") as journal:
        append_n(journal, 2)
    lines = paths.events.read_bytes().splitlines(keepends=True)
    paths.events.write_bytes(lines[0] + b"{broken\n" + lines[1])
    with pytest.raises(CorruptLogError, match=":2: corrupt"):
        list(read_events(paths.events))
    bad: list[Any] = []
    assert [e.seq for e in read_events(paths.events, strict=False, on_corrupt=bad.append)] == [1, 2]
    assert bad[0].line_no == 2
    with pytest.raises(CorruptLogError):
        Journal.open(paths.events, mission="m")


def test_missing_folders_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(LogUnavailableError, match="does not exist"):
        Journal.open(tmp_path / "nope" / "events.jsonl", mission="m")
    blocked = tmp_path / "blocked"
    (blocked / "events.jsonl").mkdir(parents=True)  # cannot be opened for writing
    with pytest.raises(LogUnavailableError, match="cannot write"):
        Journal.open(blocked / "events.jsonl", mission="m")


# Runs as nobody when started by root (root may write anywhere); prints one line per error.
UNREADABLE = """
import os, sys
from pathlib import Path
from ocactors.events import EventLogError, Journal, list_missions, read_events
if os.getuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
root = Path(sys.argv[1])
for attempt in (
    lambda: Journal.open(root / "ro" / "events.jsonl", mission="m"),
    lambda: list(read_events(root / "secret.jsonl")),
    lambda: list_missions(root / "ws"),
):
    try:
        attempt()
        print("no error")
    except EventLogError as error:
        print(error)
"""


def test_read_only_and_unreadable_places_are_one_line_errors() -> None:
    with tempfile.TemporaryDirectory() as name:  # not tmp_path: nobody must reach it
        root = Path(name)
        root.chmod(0o755)
        (root / "ro").mkdir(mode=0o555)
        (root / "secret.jsonl").write_bytes(b"")
        (root / "secret.jsonl").chmod(0)
        (root / "ws" / ".opencode" / "missions").mkdir(parents=True)
        (root / "ws" / ".opencode").chmod(0)
        done = subprocess.run(
            [sys.executable, "-c", UNREADABLE, name], capture_output=True, text=True, timeout=30
        )
        (root / "ws" / ".opencode").chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"cannot write {root}/ro/events.jsonl: Permission denied",
        f"cannot read {root}/secret.jsonl: Permission denied",
        f"cannot read {root}/ws/.opencode/missions: Permission denied",
    ]


# A full disk (the file size limit) makes a write fail part-way through a line.
DISK_FULL = """
import resource, signal, sys
from pathlib import Path
from ocactors.events import Journal, LogUnavailableError
from ocactors.events import catalogue as ev
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (5000, 5000))
journal = Journal.open(Path(sys.argv[1]), mission="m", durability=sys.argv[2])
event = ev.ToolReturned(session="s", call_id="c", name="n", output="x" * 300)
try:
    for _ in range(100):
        receipt = journal.append(event, actor="w")
        assert receipt.wait(10)
        print(receipt.seq, flush=True)
except LogUnavailableError as error:
    print(error, flush=True)
try:
    journal.append(event, actor="w")
except LogUnavailableError as error:
    print(error, flush=True)
journal.close()
"""


@pytest.mark.parametrize("durability", ["always", "batch", "never"])
def test_a_full_disk_stops_the_journal_with_one_line_and_loses_nothing_durable(
    paths: MissionPaths, durability: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(paths.events), durability],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    *seqs, failed, refused = done.stdout.splitlines()
    assert failed == refused == f"cannot write {paths.events}: File too large"
    assert seqs == [str(n) for n in range(1, len(seqs) + 1)] and len(seqs) > 5
    Journal.open(paths.events, mission="m").close()  # the torn part of the last line moves aside
    assert [e.seq for e in read_events(paths.events)] == list(range(1, len(seqs) + 1))


def test_blank_lines_are_skipped_by_readers_and_the_writer_alike(paths: MissionPaths) -> None:
    with Journal.open(paths.events, mission="m") as journal:
        append_n(journal, 2)
    paths.events.write_bytes(paths.events.read_bytes().replace(b"\n", b"\n\n", 1) + b"\n")
    with Journal.open(paths.events, mission="m") as journal:
        assert journal.append(ev.IterationStarted(iteration=3), actor="c").seq == 3
    assert [e.seq for e in read_events(paths.events)] == [1, 2, 3]


def test_a_log_from_a_newer_version_is_readable(paths: MissionPaths) -> None:
    paths.events.write_bytes(
        b'{"type":"mission.started","seq":1,"ts":"t","mission":"m","actor":"c","version":99,'
        b'"goal":"g","workspace":"w","new_field":1}\n'
        b'{"type":"mission.warped","seq":2,"ts":"t","mission":"m","actor":"c"}\n'
    )
    events = list(read_events(paths.events))
    assert isinstance(events[0], ev.MissionStarted) and events[0].version == 99
    assert isinstance(events[1], UnknownEvent)
    assert newer_format(paths.events)


def test_a_log_of_this_version_is_not_newer(paths: MissionPaths) -> None:
    assert not newer_format(paths.events)  # no log yet
    with Journal.open(paths.events, mission="m") as journal:
        started = ev.MissionStarted(version=FORMAT_VERSION, goal="g", workspace="w")
        journal.append(started, actor="commander")
    assert not newer_format(paths.events)


# --- reading ----------------------------------------------------------------------------


def test_filters_by_seq_actor_and_type(paths: MissionPaths) -> None:
    with Journal.open(paths.events, mission="m") as journal:
        for actor in ("commander", "worker:T1", "worker:T2", "planner"):
            append_n(journal, 2, actor)
        journal.append(ev.MissionSealed(iterations=1), actor="commander")
    seqs = [e.seq for e in read_events(paths.events, since=2, until=5)]
    assert seqs == [3, 4, 5]
    workers = {e.actor for e in read_events(paths.events, actors=["worker:*"])}
    assert workers == {"worker:T1", "worker:T2"}
    sealed = list(read_events(paths.events, types=["mission.sealed"]))
    assert [e.seq for e in sealed] == [9]


def test_reading_streams_in_constant_memory(paths: MissionPaths) -> None:
    line = encode(ev.ToolReturned(session="s", call_id="c", name="n", output="x" * 200))
    with open(paths.events, "wb") as log:
        for seq in range(1, 50_001):
            log.write(
                line.replace(
                    b'"type":"tool.returned"', f'"type":"tool.returned","seq":{seq}'.encode(), 1
                )
                + b"\n"
            )
    tracemalloc.start()
    total = sum(1 for _ in read_events(paths.events))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == 50_000
    assert peak < 5_000_000, peak  # the file is ~13 MB


def test_an_event_longer_than_a_read_chunk_comes_back_whole(paths: MissionPaths) -> None:
    output = "y" * 300_000  # several 64 KiB chunks
    with Journal.open(paths.events, mission="m") as journal:
        append_n(journal, 1)
        journal.append(
            ev.ToolReturned(session="s", call_id="c", name="n", output=output), actor="w"
        )
        append_n(journal, 1)
    events = list(read_events(paths.events))
    assert [e.seq for e in events] == [1, 2, 3]
    assert isinstance(events[1], ev.ToolReturned) and events[1].output == output


# --- control and redaction --------------------------------------------------------------


def test_control_commands_arrive_once_and_partial_lines_wait(paths: MissionPaths) -> None:
    send_control(paths, "ignored-old")
    inbox = ControlInbox(paths.control)
    inbox.skip_existing()
    send_control(paths, "stop", {"reason": "user"})
    with open(paths.control, "ab") as control:
        control.write(b'{"command":"half')
    polled = inbox.poll()
    assert [(c.command, c.args, c.pid) for c in polled] == [
        ("stop", {"reason": "user"}, os.getpid())
    ]
    with open(paths.control, "ab") as control:
        control.write(b'"}\n')
    assert [c.command for c in inbox.poll()] == ["half"]
    assert inbox.poll() == []


SECRETS = [
    "sk-proj-abcdefghijklmnopqrstuvwxyz123456",
    "Authorization: Bearer abcdefghijklmnopqrstuv",
    '{"x-api-key": "k-1234567890abcdef"}',
    "AKIAABCDEFGHIJKLMNOP",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "my configured value supersecretvalue42",
    '{"api_key": "k-abcdef0123456789"}',
    'escaped "quote\\value" here',
]


def test_secrets_never_reach_the_file_but_ordinary_code_does(paths: MissionPaths) -> None:
    environ = {"MY_TOKEN": "supersecretvalue42", "OTHER": '"quote\\value"'}
    redactor = Redactor(env_vars=["MY_TOKEN", "OTHER"], environ=environ)
    code = "api_key = settings.key  # read from the environment"
    with Journal.open(paths.events, mission="m", redactor=redactor) as journal:
        for secret in SECRETS:
            stamped = journal.append(ev.ModelFailed(session="s", turn=1, error=secret), actor="w")
            assert "[REDACTED]" in stamped.event.error  # type: ignore[attr-defined]
        journal.append(
            ev.ToolCalled(session="s", turn=1, call_id="c", name="write_file", arguments=code),
            actor="w",
        )
    text = paths.events.read_text()
    for leaked in (
        "abcdefghijklmnopqrstuvwxyz123456",
        "abcdefghijklmnopqrstuv",
        "k-1234567890abcdef",
        "AKIAABCDEFGHIJKLMNOP",
        "ghp_abcdefghij",
        "supersecretvalue42",
        "k-abcdef0123456789",
        "quote",
    ):
        assert leaked not in text, leaked
    assert code in text
