"""The log defends itself: a change by anyone but its writer is reported, never a normal one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ocactors.events import (
    Journal,
    LogTamperedError,
    MissionPaths,
    create_mission_dir,
    read_events,
)
from ocactors.events import catalogue as ev

DURABILITIES = ["always", "batch", "never"]


@pytest.fixture
def paths(tmp_path: Path) -> MissionPaths:
    return create_mission_dir(tmp_path, "20261125-000000-abcd")


class Alarm:
    """An ``on_tamper`` callback that remembers what it heard."""

    def __init__(self) -> None:
        self.heard: list[LogTamperedError] = []
        self.rang = threading.Event()

    def __call__(self, error: LogTamperedError) -> None:
        self.heard.append(error)
        self.rang.set()


def open_journal(paths: MissionPaths, durability: str, alarm: Alarm) -> Journal:
    return Journal.open(paths.events, mission="m", durability=durability, on_tamper=alarm)  # type: ignore[arg-type]


def append(journal: Journal, n: int = 1) -> None:
    for i in range(n):
        assert journal.append(ev.IterationStarted(iteration=i), actor="c").wait(timeout=10)


def truncate(path: Path) -> None:
    with open(path, "r+b") as log:
        log.truncate(10)


def foreign_line(path: Path) -> None:
    with open(path, "ab") as log:
        log.write(b'{"type":"review.submitted","seq":99,"iteration":1,"approved":true}\n')


def replace(path: Path) -> None:
    fresh = path.with_name("forged.jsonl")
    fresh.write_bytes(path.read_bytes())
    os.replace(fresh, path)


def delete(path: Path) -> None:
    path.unlink()


def shell_redirect(path: Path) -> None:
    """What a model's command did in the wild: ``ls > .opencode/missions/*/events.jsonl``."""
    subprocess.run(f"echo README.md > '{path}'", shell=True, check=True, timeout=10)


@pytest.mark.parametrize("durability", DURABILITIES)
@pytest.mark.parametrize(
    ("change", "how"),
    [
        (truncate, "truncated"),
        (shell_redirect, "truncated"),
        (foreign_line, "appended"),
        (replace, "replaced"),
        (delete, "deleted"),
    ],
)
def test_a_change_by_another_writer_is_reported_at_the_next_write(
    paths: MissionPaths, durability: str, change: object, how: str
) -> None:
    alarm = Alarm()
    with open_journal(paths, durability, alarm) as journal:
        append(journal, 3)
        assert journal.check() is None
        change(paths.events)  # type: ignore[operator]
        time.sleep(0.002)  # "never" checks at most once a millisecond
        append(journal)  # still written: the supervisor decides how the mission ends
        assert alarm.rang.wait(5)
        assert journal.tampered is alarm.heard[0] and journal.check() is alarm.heard[0]
    assert len(alarm.heard) == 1
    error = alarm.heard[0]
    assert error.how == how and error.REASON == "log-tampered"
    assert str(paths.events) in str(error) and "changed by another process" in str(error)


def test_check_sees_a_change_without_any_append(paths: MissionPaths) -> None:
    alarm = Alarm()
    with open_journal(paths, "batch", alarm) as journal:
        append(journal, 2)
        truncate(paths.events)
        problem = journal.check()
        assert problem is not None and problem.how == "truncated"
        assert "truncated to 10 bytes" in str(problem)
    assert alarm.rang.wait(5)


def test_a_change_after_the_last_write_is_seen_at_close(paths: MissionPaths) -> None:
    alarm = Alarm()
    journal = open_journal(paths, "batch", alarm)
    append(journal, 2)
    foreign_line(paths.events)
    journal.close()
    assert journal.tampered is not None and journal.tampered.how == "appended"
    assert alarm.rang.wait(5)


def test_the_final_event_still_lands_after_a_truncation(paths: MissionPaths) -> None:
    alarm = Alarm()
    with open_journal(paths, "batch", alarm) as journal:
        append(journal, 3)
        shell_redirect(paths.events)
        append(journal)
        stopped = ev.MissionStopped(reason=LogTamperedError.REASON, detail="test")
        assert journal.append(stopped, actor="commander").wait(timeout=10)
    events = list(read_events(paths.events, strict=False))
    assert [type(e) for e in events] == [ev.IterationStarted, ev.MissionStopped]
    assert isinstance(events[-1], ev.MissionStopped) and events[-1].seq == 5


@pytest.mark.parametrize("durability", DURABILITIES)
def test_normal_appends_from_many_threads_never_raise_the_alarm(
    paths: MissionPaths, durability: str
) -> None:
    alarm = Alarm()
    with open_journal(paths, durability, alarm) as journal:
        threads = [threading.Thread(target=append, args=(journal, 100)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        reader = list(read_events(paths.events))  # readers never count as writers
        assert journal.flush() and journal.check() is None
    assert len(reader) <= 800 and journal.tampered is None and not alarm.heard


def test_a_repaired_torn_tail_and_a_reopened_log_never_raise_the_alarm(
    paths: MissionPaths, capfd: pytest.CaptureFixture[str]
) -> None:
    alarm = Alarm()
    with open_journal(paths, "batch", alarm) as journal:
        append(journal, 2)
    with open(paths.events, "ab") as log:
        log.write(b'{"type":"iteration.sta')  # a crash in the middle of a line
    with open_journal(paths, "batch", alarm) as journal:  # repairs: the file shrinks
        append(journal, 2)
        assert journal.check() is None
    assert "repaired a torn tail" in capfd.readouterr().err
    assert not alarm.heard and [e.seq for e in read_events(paths.events)] == [1, 2, 3, 4]


# Another process tampers while this one's journal is writing: the alarm comes within a batch.
TAMPER = """
import sys
with open(sys.argv[1], "r+b") as log:
    log.truncate(0)
"""


def test_another_process_truncating_a_live_log_is_caught_within_one_append(
    paths: MissionPaths,
) -> None:
    alarm = Alarm()
    with open_journal(paths, "batch", alarm) as journal:
        append(journal, 5)
        subprocess.run([sys.executable, "-c", TAMPER, str(paths.events)], check=True, timeout=30)
        started = time.monotonic()
        append(journal)
        assert alarm.rang.wait(5) and time.monotonic() - started < 1.0
