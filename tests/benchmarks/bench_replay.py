"""Replaying a long mission log: decode, fold, peak RSS, and ``status``/``ls`` as people run them.

    python tests/benchmarks/bench_replay.py                 # 1M events, 200 missions x 2,000
    python tests/benchmarks/bench_replay.py --events 100000 --missions 20

The log is generated in a temporary folder, shaped like a real mission: planner, worker and
reviewer sessions whose turns are model.requested / model.responded / tool.called /
tool.returned, tasks with their leases, iterations, review and verify, a final seal; about
589 bytes an event on average, 1% of the model responses carry a 20 KB answer.  Every reader
runs in its own process (so its peak RSS is its own) and is printed beside a msgspec
decode-only and a stdlib ``json`` baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ocactors.events import catalogue as ev  # noqa: E402
from ocactors.events.codec import encode  # noqa: E402

BIG_RESPONSE = 20_000
WORDS = (  # noqa: SIM905
    "the def return self import from class if else for in while with as None True False "
    "value result path file test assert raise except try config parser token request "
    "response session worker task lease error message line index count name data items "
    "calc add sub mul div module function argument list dict str int float open read write"
).split()


class Texts:
    """Pre-built realistic text (code-like words, newlines) cut to the sizes asked for."""

    def __init__(self, rng: random.Random) -> None:
        words = [rng.choice(WORDS) for _ in range(60_000)]
        lines = [" ".join(words[i : i + 9]) for i in range(0, len(words), 9)]
        self.corpus = "\n".join(lines)
        self.rng = rng

    def __call__(self, mean: int) -> str:
        """About ``mean`` characters (between half and 1.5 times), from a random place."""
        size = self.rng.randint(mean // 2, mean * 3 // 2)
        start = self.rng.randrange(0, len(self.corpus) - size)
        return self.corpus[start : start + size]


class MissionWriter:
    """Produces one mission's events in order, stamped as the journal would."""

    def __init__(self, mission: str, seed: int) -> None:
        self.mission = mission
        self.rng = random.Random(seed)
        self.text = Texts(self.rng)
        self.seq = 0
        self.clock = 1_763_000_000.0

    def stamp(self, event: ev.Event, actor: str) -> ev.Event:
        import msgspec

        self.seq += 1
        self.clock += self.rng.uniform(0.001, 0.4)
        micros = int(self.clock * 1_000_000) % 1_000_000
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.clock)) + f".{micros:06d}Z"
        return msgspec.structs.replace(
            event, seq=self.seq, ts=ts, mission=self.mission, actor=actor
        )

    def events(self, total: int) -> Iterator[ev.Event]:
        """``total`` events: whole iterations, then review, verify and the seal."""
        yield self.stamp(
            ev.MissionStarted(version=ev.FORMAT_VERSION, goal=self.text(80), workspace="/w"),
            "commander",
        )
        iteration = 0
        while self.seq < total - 40:
            iteration += 1
            yield from self.iteration(iteration, total - 12)
        yield from self.ending(iteration)

    def iteration(self, n: int, budget: int) -> Iterator[ev.Event]:
        yield self.stamp(ev.IterationStarted(iteration=n), "commander")
        yield self.stamp(ev.PlanRequested(iteration=n), "commander")
        yield from self.session(f"planner#{n}", "planner", None, turns=2)
        tasks = [
            ev.TaskSpec(id=f"I{n}T{i}", title=self.text(40), files=[f"src/m{n}_{i}.py"])
            for i in range(self.rng.randint(3, 8))
        ]
        yield self.stamp(ev.PlanAccepted(iteration=n, tasks=tasks), "commander")
        for task in tasks:
            if self.seq >= budget:
                return
            yield from self.task(task)
        yield self.stamp(ev.ReviewRequested(iteration=n), "commander")
        yield from self.session(f"reviewer#{n}", "reviewer", None, turns=2)
        yield self.stamp(ev.ReviewSubmitted(iteration=n, approved=False), "commander")

    def task(self, task: ev.TaskSpec) -> Iterator[ev.Event]:
        actor = f"worker:{task.id}"
        yield self.stamp(ev.LeaseGranted(task_id=task.id, files=task.files), "commander")
        yield self.stamp(
            ev.TaskStarted(task_id=task.id, attempt=1, session=f"{task.id}#1"), "commander"
        )
        yield from self.session(f"{task.id}#1", actor, task.id, turns=self.rng.randint(3, 12))
        yield self.stamp(ev.TaskFinished(task_id=task.id, summary=self.text(120)), "commander")
        yield self.stamp(ev.LeaseReleased(task_id=task.id, files=task.files), "commander")

    def session(self, session: str, actor: str, task: str | None, turns: int) -> Iterator[ev.Event]:
        role = actor.split(":")[0]
        opening = [ev.ChatMessage(role="system", content=self.text(250))]
        yield self.stamp(
            ev.SessionStarted(
                session=session, role=role, model="gpt-x", task_id=task, messages=opening
            ),
            actor,
        )
        for turn in range(1, turns + 1):
            yield from self.turn(session, actor, turn)
        yield self.stamp(ev.SessionFinished(session=session, result={"ok": True}), actor)

    def turn(self, session: str, actor: str, turn: int) -> Iterator[ev.Event]:
        tool = self.rng.choice(("read_file", "write_file", "run_command", "grep", "list_files"))
        call = ev.ToolCall(id=f"call_{self.seq}", name=tool, arguments=self.arguments(tool))
        asked = [ev.ChatMessage(role="tool", content=self.text(60), tool_call_id="c")]
        yield self.stamp(
            ev.ModelRequested(session=session, turn=turn, model="gpt-x", messages=asked), actor
        )
        big = self.rng.random() < 0.0625  # 1% of all events are a 20 KB answer
        content = self.text(BIG_RESPONSE) if big else self.text(60)
        message = ev.ChatMessage(role="assistant", content=content, tool_calls=[call])
        usage = ev.Usage(prompt_tokens=self.rng.randint(500, 9000), completion_tokens=200)
        yield self.stamp(
            ev.ModelResponded(
                session=session, turn=turn, message=message, usage=usage, latency_ms=812.5
            ),
            actor,
        )
        yield self.stamp(
            ev.ToolCalled(
                session=session, turn=turn, call_id=call.id, name=tool, arguments=call.arguments
            ),
            actor,
        )
        output = self.text(self.rng.choice((30, 80, 160, 320)))
        yield self.stamp(
            ev.ToolReturned(session=session, call_id=call.id, name=tool, output=output), actor
        )

    def arguments(self, tool: str) -> str:
        body = {"path": f"src/m{self.rng.randint(0, 99)}.py"}
        if tool == "write_file":
            body["content"] = self.text(120)
        elif tool == "run_command":
            body = {"command": "python -m pytest -q tests"}
        return json.dumps(body)

    def ending(self, iteration: int) -> Iterator[ev.Event]:
        yield self.stamp(ev.ReviewRequested(iteration=iteration), "commander")
        yield from self.session(f"reviewer#{iteration}b", "reviewer", None, turns=1)
        yield self.stamp(ev.ReviewSubmitted(iteration=iteration, approved=True), "commander")
        yield self.stamp(ev.VerifyStarted(iteration=iteration, command="pytest"), "commander")
        yield self.stamp(
            ev.VerifyFinished(
                iteration=iteration, command="pytest", exit_code=0, passed=True, output="ok"
            ),
            "commander",
        )
        yield self.stamp(ev.MissionSealed(iterations=iteration, summary="done"), "commander")


def write_mission(workspace: Path, mission: str, total: int, seed: int) -> Path:
    """A mission folder under ``workspace`` with a log of about ``total`` events."""
    folder = workspace / ".opencode" / "missions" / mission
    folder.mkdir(parents=True)
    path = folder / "events.jsonl"
    with open(path, "wb") as log:
        batch: list[bytes] = []
        for event in MissionWriter(mission, seed).events(total):
            batch.append(encode(event))
            if len(batch) >= 4096:
                log.write(b"\n".join(batch) + b"\n")
                batch.clear()
        if batch:
            log.write(b"\n".join(batch) + b"\n")
    return path


# --- readers, each in its own process -------------------------------------------------------

READERS = {
    "stdlib json (read + json.loads)": """
import json
n = 0
with open(PATH, "rb") as f:
    for line in f:
        json.loads(line); n += 1
""",
    "msgspec decode only (read + typed decode)": """
import msgspec
from ocactors.events.catalogue import AnyEvent
decoder = msgspec.json.Decoder(AnyEvent)
n = 0
with open(PATH, "rb") as f:
    for line in f:
        decoder.decode(line); n += 1
""",
    "ocactors read_events (read + decode)": """
from ocactors.events import read_events
n = sum(1 for _ in read_events(PATH))
""",
    "ocactors read_events + fold_mission": """
from ocactors.events import read_events
from ocactors.actors.state import fold_mission
n = 0
def counted():
    global n
    for event in read_events(PATH):
        n += 1
        yield event
state = fold_mission(counted())
assert state.phase == "sealed", state.phase
""",
}

HARNESS = """
import resource, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
PATH = Path({path!r})
started = time.perf_counter()
{body}
elapsed = time.perf_counter() - started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(n, elapsed, rss)
"""


def run_reader(body: str, path: Path) -> tuple[int, float, int]:
    """(events, seconds, peak RSS in KiB) of one reader in a fresh interpreter."""
    code = HARNESS.format(root=str(ROOT), path=str(path), body=body.strip())
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=3600
    )
    n, elapsed, rss = done.stdout.split()
    return int(n), float(elapsed), int(rss)


def _cli() -> str:
    cli = Path(sys.executable).parent / "ocactors"
    return str(cli) if cli.exists() else f"{sys.executable} -m ocactors.cli"


def timed_shell(command: str) -> float:
    """Wall seconds of a shell pipeline (best of 3)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(command, shell=True, capture_output=True, check=True, timeout=3600)
        best = min(best, time.perf_counter() - started)
    return best


def timed_cli(*args: str) -> float:
    """Wall seconds of one ``ocactors`` command run as a person would (best of 3)."""
    command = _cli().split()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [*command, *args], capture_output=True, check=True, timeout=3600, env=_quiet_env()
        )
        best = min(best, time.perf_counter() - started)
    return best


def _quiet_env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def report(root: Path, events: int, missions: int, per_mission: int) -> None:
    one = root / "one"
    started = time.perf_counter()
    path = write_mission(one, "20261125-000000-0001", events, seed=1)
    size = path.stat().st_size
    with open(path, "rb") as log:
        lines = sum(1 for _ in log)
    print(
        f"log: {lines:,} events, {size / 1e6:,.0f} MB, {size / lines:,.0f} B average "
        f"(written in {time.perf_counter() - started:.1f} s)\n"
    )
    print("| reader | events/s | seconds | peak RSS MB |\n|---|---|---|---|")
    for name, body in READERS.items():
        n, elapsed, rss = run_reader(body, path)
        print(f"| {name} | {n / elapsed:,.0f} | {elapsed:.2f} | {rss / 1024:.0f} |")
    many = root / "many"
    for i in range(missions):
        write_mission(many, f"20261125-{i:06d}-{i % 65536:04x}", per_mission, seed=100 + i)
    ls_s = timed_cli("ls", "-C", str(many))
    one_status_s = timed_cli("status", "-C", str(many))
    status_s = timed_cli("status", "-C", str(one))
    again_s = timed_cli("status", "-C", str(one))
    print("\n| command (best of 3) | seconds | baseline | baseline seconds |\n|---|---|---|---|")
    decode_only = run_reader(READERS["msgspec decode only (read + typed decode)"], path)[1]
    print(
        f"| `status`, {lines:,} events | {status_s:.2f} | msgspec over the file "
        f"| {decode_only:.2f} |"
    )
    print(f"| `status` again, nothing appended | {again_s:.2f} | - | - |")
    print(
        f"| `ls`, {missions} missions x {per_mission:,} events | {ls_s:.2f} | "
        f"`status` of one of them | {one_status_s:.2f} |"
    )
    tail_s = timed_shell(f"{_cli()} tail --json -C {one} | wc -l")
    cat_s = timed_shell(f"cat {path} | wc -l")
    pipe = "\\|"
    print(
        f"| `tail --json {pipe} wc -l`, {lines:,} events | {tail_s:.2f} "
        f"| `cat {pipe} wc -l` | {cat_s:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the long log")
    parser.add_argument("--missions", type=int, default=200, help="missions for ls")
    parser.add_argument("--mission-events", type=int, default=2000, help="events per ls mission")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as name:
        report(Path(name), args.events, args.missions, args.mission_events)


if __name__ == "__main__":
    main()
