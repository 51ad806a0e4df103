"""Following a log that grows: same process, another process, restarts, polling."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ocactors.events import Journal, MissionPaths, create_mission_dir, follow
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import Record


@pytest.fixture
def paths(tmp_path: Path) -> MissionPaths:
    return create_mission_dir(tmp_path, "20261125-000000-abcd")


class Seen:
    """How many events the follower has seen, for a writer to wait on (no sleeps)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def add(self) -> None:
        with self.changed:
            self.count += 1
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.count >= count, timeout)


def collect(
    path: Path, n: int, seen: Seen | None = None, **options: object
) -> tuple[list[Record], list[float]]:
    """Follow in a thread until ``n`` events came; returns them with arrival times."""
    got: list[Record] = []
    times: list[float] = []
    stop = threading.Event()

    def run() -> None:
        for event in follow(path, stop_event=stop, **options):  # type: ignore[arg-type]
            got.append(event)
            times.append(time.monotonic())
            if seen is not None:
                seen.add()
            if len(got) >= n:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=15)
    stop.set()
    return got, times


@pytest.mark.parametrize("force_polling", [False, True])
def test_follow_sees_events_appended_later_even_before_the_file_exists(
    paths: MissionPaths, force_polling: bool
) -> None:
    appended: list[float] = []
    seen = Seen()

    def write() -> None:
        """Each event only after the follower saw the one before: appended later, surely."""
        with Journal.open(paths.events, mission="m", durability="always") as journal:
            for i in range(5):
                journal.append(ev.IterationStarted(iteration=i), actor="c")
                appended.append(time.monotonic())
                assert seen.wait_for(i + 1)

    writer = threading.Thread(target=write)
    writer.start()
    got, times = collect(paths.events, 5, seen, force_polling=force_polling)
    writer.join(timeout=10)
    assert [e.seq for e in got] == [1, 2, 3, 4, 5]
    delays = sorted(t - a for t, a in zip(times, appended, strict=True))
    assert delays[len(delays) // 2] < 0.2 and delays[-1] < 0.5, delays


CHILD = """
import sys, time
from pathlib import Path
from ocactors.events import Journal
from ocactors.events import catalogue as ev
with Journal.open(Path(sys.argv[1]), mission="m", durability="always") as journal:
    for i in range(10):
        event = journal.append(ev.IterationStarted(iteration=i), actor="c").event
        print(event.seq, time.time(), flush=True)
        time.sleep(0.05)
"""


def test_follow_a_writer_in_another_process_within_200_ms(paths: MissionPaths) -> None:
    received: dict[int, float] = {}
    stop = threading.Event()

    def run() -> None:
        for event in follow(paths.events, stop_event=stop):
            received[event.seq] = time.time()
            if len(received) == 10:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(paths.events)], capture_output=True, text=True, timeout=30
    )
    thread.join(timeout=10)
    stop.set()
    sent = {int(s): float(t) for s, t in (line.split() for line in done.stdout.splitlines())}
    assert sorted(received) == list(range(1, 11))
    delays = sorted(received[seq] - sent[seq] for seq in sent)
    assert delays[len(delays) // 2] < 0.2, delays


def test_a_writer_restart_after_repair_is_followed_without_duplicates(paths: MissionPaths) -> None:
    with Journal.open(paths.events, mission="m") as journal:
        journal.append(ev.IterationStarted(iteration=1), actor="c")
    with open(paths.events, "ab") as log:
        log.write(b'{"torn": ')

    seen = Seen()

    def restart() -> None:
        assert seen.wait_for(1)  # the follower read event 1, then met the torn tail
        with Journal.open(paths.events, mission="m") as journal:  # repairs, shrinking the file
            journal.append(ev.IterationStarted(iteration=2), actor="c")
            journal.append(ev.IterationStarted(iteration=3), actor="c")

    writer = threading.Thread(target=restart)
    writer.start()
    got, _ = collect(paths.events, 3, seen)
    writer.join(timeout=10)
    assert [e.seq for e in got] == [1, 2, 3]


def test_stop_event_and_idle_timeout_end_following(paths: MissionPaths) -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert list(follow(paths.events, stop_event=stop)) == []
    assert time.monotonic() - started < 1.0
    started = time.monotonic()
    assert list(follow(paths.events, idle_timeout=0.3, force_polling=True)) == []
    assert 0.25 < time.monotonic() - started < 1.5


def test_since_skips_what_was_seen(paths: MissionPaths) -> None:
    with Journal.open(paths.events, mission="m") as journal:
        for i in range(4):
            journal.append(ev.IterationStarted(iteration=i), actor="c")
    assert [e.seq for e in follow(paths.events, since=2, idle_timeout=0.3)] == [3, 4]


def test_a_restart_that_cuts_a_line_already_read_loses_nothing(paths: MissionPaths) -> None:
    with Journal.open(paths.events, mission="m") as journal:
        journal.append(ev.IterationStarted(iteration=1), actor="c")
    with open(paths.events, "ab") as log:
        log.write(b"{}\n")  # a complete line that is no event: the follower reads past it
    got: list[int] = []
    first, stop = threading.Event(), threading.Event()

    def run() -> None:
        for event in follow(paths.events, stop_event=stop):
            got.append(event.seq)
            first.set()
            if len(got) == 3:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert first.wait(5)
    long = ev.ToolReturned(session="s", call_id="c", name="n", output="x" * 200)
    with Journal.open(paths.events, mission="m") as journal:  # cuts "{}", the file grows again
        journal.append(long, actor="c")
        journal.append(long, actor="c")
    thread.join(timeout=10)
    stop.set()
    assert got == [1, 2, 3]


@pytest.mark.parametrize("force_polling", [False, True])
def test_a_stop_event_ends_a_waiting_follower_within_100_ms(
    paths: MissionPaths, force_polling: bool
) -> None:
    with Journal.open(paths.events, mission="m") as journal:
        journal.append(ev.IterationStarted(iteration=1), actor="c")
    stop, waiting, ended = threading.Event(), threading.Event(), threading.Event()

    def run() -> None:
        for _ in follow(
            paths.events, stop_event=stop, force_polling=force_polling, poll_interval=5
        ):
            waiting.set()  # the next step of the follower is to wait for news
        ended.set()

    threading.Thread(target=run, daemon=True).start()
    assert waiting.wait(5)
    started = time.monotonic()
    stop.set()
    assert ended.wait(2)
    assert time.monotonic() - started < 0.1


PACED = """
import sys, time
from pathlib import Path
from ocactors.events import Journal
from ocactors.events import catalogue as ev
with Journal.open(Path(sys.argv[1]), mission="m", durability="never") as journal:
    time.sleep(0.3)  # the follower is watching by now
    for i in range(30):
        journal.append(ev.IterationStarted(iteration=i), actor="c")
        print(time.time(), flush=True)
        time.sleep(0.02)
"""


def test_an_append_in_another_process_is_seen_within_milliseconds(paths: MissionPaths) -> None:
    """The default debounce is a few ms, and nothing waits for a periodic re-check."""
    seen: dict[int, float] = {}
    stop = threading.Event()

    def run() -> None:
        for event in follow(paths.events, stop_event=stop):
            seen[event.seq] = time.time()
            if len(seen) == 30:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    done = subprocess.run(
        [sys.executable, "-c", PACED, str(paths.events)], capture_output=True, text=True, timeout=30
    )
    thread.join(timeout=10)
    stop.set()
    sent = [float(t) for t in done.stdout.split()]
    delays = sorted(seen[seq] - sent[seq - 1] for seq in range(1, 31))
    assert delays[15] < 0.010, delays
