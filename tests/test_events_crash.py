"""kill -9 the writer at random points: every event it reported durable survives."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocactors.events import Journal, create_mission_dir, read_events

WRITER = """
import sys, threading
from pathlib import Path
from ocactors.events import Journal
from ocactors.events import catalogue as ev
journal = Journal.open(Path(sys.argv[1]), mission="m", durability=sys.argv[2])
print("ready", flush=True)
lock = threading.Lock()

def work():
    while True:
        event = ev.ToolReturned(session="s", call_id="c", name="n", output="x" * 300)
        receipt = journal.append(event, actor="w")
        receipt.wait()
        with lock:
            print(receipt.seq, flush=True)

for _ in range(4):
    threading.Thread(target=work, daemon=True).start()
threading.Event().wait()
"""


@pytest.mark.parametrize("durability", ["always", "batch"])
def test_durable_events_survive_sigkill(tmp_path: Path, durability: str) -> None:
    rng = random.Random(durability)
    for run in range(12):
        paths = create_mission_dir(tmp_path, f"20261125-00000{run:02d}-{durability}")
        with subprocess.Popen(
            [sys.executable, "-c", WRITER, str(paths.events), durability],
            stdout=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            first = int(child.stdout.readline())  # kill only once appends are under way
            time.sleep(rng.uniform(0.0, 0.25))
            child.send_signal(signal.SIGKILL)
            reported = [first, *(int(line) for line in child.stdout.read().split())]
            child.wait(timeout=10)
        Journal.open(paths.events, mission="m").close()  # opens cleanly (repair allowed)
        seqs = [e.seq for e in read_events(paths.events)]
        assert seqs == list(range(1, len(seqs) + 1))
        assert max(reported) <= len(seqs), (max(reported), len(seqs))
