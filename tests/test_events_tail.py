"""`ocactors tail --json` copies the log's bytes as they are, and ends quietly on a closed pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocactors.events import Journal, MissionPaths, create_mission_dir
from ocactors.events import catalogue as ev

CLI = [sys.executable, "-m", "ocactors.cli"]


@pytest.fixture
def log(tmp_path: Path) -> MissionPaths:
    """A 2,502-event log (~1.8 MB: more than a pipe holds, and than one block) ending torn."""
    paths = create_mission_dir(tmp_path, "20261125-000000-abcd")
    with Journal.open(paths.events, mission=paths.id) as journal:
        journal.append(ev.MissionStarted(version=1, goal="g", workspace="/w"), actor="commander")
        for i in range(2500):
            output = f"line {i} of a file: é “quoted” \\ back\n" * 12
            journal.append(
                ev.ToolReturned(session="s", call_id=f"c{i}", name="read_file", output=output),
                actor="worker:T1",
            )
    with open(paths.events, "ab") as log:
        # from a newer ocactors: an unknown type, its keys in an order of its own
        log.write(b'{"seq":2502,"zeta":1,"type":"mission.warped","alpha":[2, 3],"actor":"c"}\n')
        log.write(b'{"type":"tool.returned","seq":2503,"ts"')  # a write in progress
    return paths


def tail(workspace: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*CLI, "tail", "-C", str(workspace), *args], capture_output=True, timeout=60
    )


def complete_lines(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1]


def test_json_without_filters_is_the_logs_complete_lines_byte_for_byte(log: MissionPaths) -> None:
    done = tail(log.root.parents[2], "--json")
    assert done.returncode == 0 and done.stderr == b""
    assert done.stdout == complete_lines(log.events)


def test_since_starts_at_the_next_line_and_copies_the_rest(log: MissionPaths) -> None:
    done = tail(log.root.parents[2], "--json", "--since", "1000")
    lines = complete_lines(log.events).splitlines(keepends=True)
    assert done.returncode == 0 and done.stdout == b"".join(lines[1000:])
    assert tail(log.root.parents[2], "--json", "--since", "5000").stdout == b""


@pytest.mark.parametrize(
    "args", [["--json"], ["--json", "--type", "tool.returned"], [], ["--actor", "worker:*"]]
)
def test_a_reader_that_goes_away_ends_tail_quietly(log: MissionPaths, args: list[str]) -> None:
    env = {**os.environ, "PYTHONFAULTHANDLER": ""}
    with subprocess.Popen(
        [*CLI, "tail", "-C", str(log.root.parents[2]), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        assert child.stdout.readline()  # `| head -1`
        child.stdout.close()
        assert child.wait(timeout=60) == 0
        assert child.stderr.read() == b""
