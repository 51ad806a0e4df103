"""Journal throughput, durable-append latency and follow latency, each beside a baseline of the
same run.

    python tests/benchmarks/bench_journal.py [--runs 5]

The events are realistic: a slice of the generated mission of ``bench_replay.py`` (model
requests and responses, tool calls and results, task and lease events; ~590 bytes on average,
1% carry a 20 KB model answer), not one repeated string.
"""

from __future__ import annotations

import argparse
import bisect
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_replay import MissionWriter  # type: ignore[import-not-found]  # noqa: E402

from ocactors.events import Journal, create_mission_dir, encode, follow  # noqa: E402
from ocactors.events import catalogue as ev  # noqa: E402


def realistic_events(n: int = 4000) -> list[ev.Event]:
    """``n`` events of a generated mission, envelope cleared so the journal stamps them."""
    events = []
    for event in MissionWriter("m", seed=7).events(n + 100):
        events.append(msgspec.structs.replace(event, seq=0, ts="", mission="", actor=""))
        if len(events) == n:
            break
    return events


EVENTS = realistic_events()
LINES = [encode(e) + b"\n" for e in EVENTS]


def fresh(root: Path, tag: str) -> Path:
    return create_mission_dir(root, f"20260101-000000-{tag}-{time.monotonic_ns()}").events


# --- baselines ------------------------------------------------------------------------------


def raw_rate(root: Path, n: int, sync: bool) -> float:
    """encode + os.write (+ fdatasync) of the same events, one line at a time: lines/s."""
    fd = os.open(fresh(root, "raw"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    started = time.perf_counter()
    for i in range(n):
        os.write(fd, encode(EVENTS[i % len(EVENTS)]) + b"\n")
        if sync:
            os.fdatasync(fd)
    elapsed = time.perf_counter() - started
    os.close(fd)
    return n / elapsed


# --- the journal ------------------------------------------------------------------------------


def waiting_rate(
    root: Path, durability: str, n: int, threads: int, latencies: list[float] | None = None
) -> float:
    """Appends per second, every producer waiting for its own event to be durable."""
    path = fresh(root, f"{durability}{threads}")
    with Journal.open(path, mission="m", durability=durability) as journal:  # type: ignore[arg-type]
        per_thread: list[list[float]] = [[] for _ in range(threads)]

        def work(k: int) -> None:
            mine = per_thread[k]
            for i in range(k, n, threads):
                started = time.perf_counter()
                journal.append(EVENTS[i % len(EVENTS)], actor="worker:T1").wait()
                mine.append(time.perf_counter() - started)

        elapsed = run_threads(threads, work)
    if latencies is not None:
        latencies.extend(t for mine in per_thread for t in mine)
    return n / elapsed


def streaming_rate(root: Path, n: int, threads: int) -> float:
    """Appends per second in ``batch`` mode, producers not waiting; the final flush counts."""
    path = fresh(root, f"stream{threads}")
    with Journal.open(path, mission="m", durability="batch") as journal:

        def work(k: int) -> None:
            for i in range(k, n, threads):
                journal.append(EVENTS[i % len(EVENTS)], actor="worker:T1")

        elapsed = run_threads(threads, work, after=journal.flush)
    return n / elapsed


def run_threads(
    threads: int, work: Callable[[int], None], after: Callable[[], object] = int
) -> float:
    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    after()
    return time.perf_counter() - started


def median_of(runs: int, measure: Callable[[], float]) -> float:
    """The median of ``runs`` repetitions (these machines are noisy)."""
    return statistics.median(measure() for _ in range(runs))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


# --- follow latency across processes ------------------------------------------------------------

WRITER = """
import sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
from pathlib import Path
from bench_journal import EVENTS, LINES
from ocactors.events import Journal
path, mode, n, gap = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
sent = []
if mode == "journal":
    with Journal.open(path, mission="m", durability="batch") as journal:
        time.sleep(0.5)
        for i in range(n):
            journal.append(EVENTS[i % 50], actor="worker:T1")
            sent.append(time.time())
            time.sleep(gap)
else:
    with open(path, "ab", buffering=0) as log:
        time.sleep(0.5)
        for i in range(n):
            log.write(LINES[i % 50])
            sent.append(time.time())
            time.sleep(gap)
print(" ".join(map(repr, sent)))
"""


def start_writer(path: Path, mode: str, n: int, gap: float) -> subprocess.Popen[str]:
    code = WRITER.format(root=str(ROOT), bench=str(Path(__file__).resolve().parent))
    return subprocess.Popen(
        [sys.executable, "-c", code, str(path), mode, str(n), str(gap)],
        stdout=subprocess.PIPE,
        text=True,
    )


def sent_times(writer: subprocess.Popen[str]) -> list[float]:
    out, _ = writer.communicate(timeout=120)
    return [float(t) for t in out.split()]


def follow_latency(root: Path, n: int, gap: float, **options: object) -> list[float]:
    """Append in a writer process -> yielded by ``follow`` here, ms."""
    path = fresh(root, "follow")
    seen: dict[int, float] = {}
    stop = threading.Event()

    def run() -> None:
        for event in follow(path, stop_event=stop, **options):  # type: ignore[arg-type]
            seen[event.seq] = time.time()
            if len(seen) == n:
                return

    follower = threading.Thread(target=run)
    follower.start()
    sent = sent_times(start_writer(path, "journal", n, gap))
    follower.join(timeout=10)
    stop.set()
    return [(seen[s] - sent[s - 1]) * 1000 for s in range(1, n + 1) if s in seen]


def watch_latency(root: Path, n: int, gap: float) -> list[float]:
    """Baseline: a bare watchfiles.watch (debounce 2 ms, step 1 ms) seeing a raw append, ms."""
    from watchfiles import watch

    path = fresh(root, "watch")
    seen: list[float] = []
    ready, stop = threading.Event(), threading.Event()

    def run() -> None:
        for changes in watch(
            path.parent, debounce=2, step=1, stop_event=stop, rust_timeout=50,
            yield_on_timeout=True, recursive=False,
        ):  # fmt: skip
            ready.set()
            if changes:
                seen.append(time.time())

    watcher = threading.Thread(target=run)
    watcher.start()
    ready.wait(5)
    sent = sent_times(start_writer(path, "raw", n, gap))
    stop.set()
    watcher.join(timeout=10)
    return [(got - sent[bisect.bisect(sent, got) - 1]) * 1000 for got in seen if got > sent[0]]


def writer_slowed(root: Path, runs: int) -> tuple[float, float]:
    """Streaming appends/s alone, and with a follower of the same log in another process."""
    alone = median_of(runs, partial(streaming_rate, root, 50_000, 1))
    path = fresh(root, "followed")
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\nfrom ocactors.events import follow\n"
        "for _ in follow(Path(sys.argv[1])): pass\n"
    )
    follower = subprocess.Popen([sys.executable, "-c", code, str(path)])
    try:
        time.sleep(1.0)

        def followed() -> float:
            with Journal.open(path, mission="m", durability="batch") as journal:
                started = time.perf_counter()
                for i in range(50_000):
                    journal.append(EVENTS[i % len(EVENTS)], actor="w")
                journal.flush()
                elapsed = time.perf_counter() - started
            return 50_000 / elapsed

        with_follower = median_of(runs, followed)
    finally:
        follower.kill()
        follower.wait()
    return alone, with_follower


# --- report ---------------------------------------------------------------------------------------


def report(root: Path, runs: int) -> None:
    size = sum(map(len, LINES)) / len(LINES)
    print(f"{len(EVENTS)} realistic events, {size:.0f} B average; median of {runs} runs each\n")
    sync_base = median_of(runs, lambda: raw_rate(root, 2000, sync=True))
    write_base = median_of(runs, lambda: raw_rate(root, 100_000, sync=False))
    print("| mode | ocactors appends/s | baseline | baseline/s | ratio |\n|---|---|---|---|---|")
    latencies: list[float] = []
    sync, write = ("write+fdatasync", sync_base), ("encode+write per line", write_base)
    rows = (
        ("always, 1 thread", partial(waiting_rate, root, "always", 2000, 1), sync),
        ("batch, 1 thread waiting", partial(waiting_rate, root, "batch", 2000, 1), sync),
        (
            "batch, 50 threads each waiting",
            partial(waiting_rate, root, "batch", 20_000, 50, latencies),
            sync,
        ),
        ("batch, 1 producer not waiting", partial(streaming_rate, root, 100_000, 1), write),
        ("batch, 4 producers not waiting", partial(streaming_rate, root, 100_000, 4), write),
        ("never, 1 thread", partial(waiting_rate, root, "never", 100_000, 1), write),
    )
    for name, measure, (base_name, base) in rows:
        rate = median_of(runs, measure)
        print(f"| {name} | {rate:,.0f} | {base_name} | {base:,.0f} | {rate / base:.2f} |")
    ms = [t * 1000 for t in latencies]
    print(
        f"\n50 threads each waiting, append -> durable, ms: p50 {percentile(ms, 0.5):.2f}, "
        f"p99 {percentile(ms, 0.99):.2f}, max {max(ms):.2f} ({len(ms):,} appends)"
    )
    alone, followed = writer_slowed(root, runs)
    print(
        f"\nwriter, 1 producer not waiting: {alone:,.0f}/s alone, {followed:,.0f}/s while "
        f"another process follows the log ({followed / alone:.2f})"
    )
    n, gap = 200, 0.01
    print("\n| follow latency, append in one process -> seen in another, ms | p50 | p99 |")
    print("|---|---|---|")
    for name, delays in (
        ("ocactors `follow` (default)", follow_latency(root, n, gap)),
        ("ocactors `follow`, force_polling", follow_latency(root, n, gap, force_polling=True)),
        ("baseline: bare `watchfiles.watch`, debounce 2 ms", watch_latency(root, n, gap)),
    ):
        print(f"| {name} | {percentile(delays, 0.5):.1f} | {percentile(delays, 0.99):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions per figure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as name:
        report(Path(name), args.runs)


if __name__ == "__main__":
    main()
