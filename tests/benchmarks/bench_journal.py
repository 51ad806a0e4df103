"""Journal throughput and follow latency, each beside a raw-file baseline of the same run.

python tests/benchmarks/bench_journal.py
"""

from __future__ import annotations

import bisect
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from watchfiles import watch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ocactors.events import Journal, create_mission_dir, encode, follow
from ocactors.events import catalogue as ev

EVENT = ev.ToolReturned(session="worker:T1#1", call_id="c1", name="read_file", output="x" * 300)


def raw_baseline(path: Path, n: int, sync: bool) -> float:
    """os.write (+ fdatasync) of the same bytes, one line at a time: appends per second."""
    line = encode(EVENT) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    started = time.perf_counter()
    for _ in range(n):
        os.write(fd, line)
        if sync:
            os.fdatasync(fd)
    elapsed = time.perf_counter() - started
    os.close(fd)
    return n / elapsed


def journal_rate(root: Path, durability: str, n: int, threads: int) -> float:
    """Appends per second, every caller waiting for its receipt."""
    paths = create_mission_dir(root, f"20260101-000000-{durability}{threads}-{time.monotonic_ns()}")
    with Journal.open(paths.events, mission="m", durability=durability) as journal:  # type: ignore[arg-type]

        def work() -> None:
            for _ in range(n // threads):
                journal.append(EVENT, actor="w").wait()

        workers = [threading.Thread(target=work) for _ in range(threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
    return n / elapsed


def follow_latency(root: Path, n: int = 50) -> list[float]:
    """Durable append -> seen by a follower in another thread, ms."""
    paths = create_mission_dir(root, f"20260101-000000-follow{time.monotonic_ns()}")
    seen: dict[int, float] = {}
    stop = threading.Event()

    def run() -> None:
        for event in follow(paths.events, stop_event=stop):
            seen[event.seq] = time.perf_counter()
            if len(seen) == n:
                return

    follower = threading.Thread(target=run)
    follower.start()
    sent: dict[int, float] = {}
    with Journal.open(paths.events, mission="m", durability="batch") as journal:
        for _ in range(n):
            receipt = journal.append(EVENT, actor="w")
            receipt.wait()
            sent[receipt.seq] = time.perf_counter()
            time.sleep(0.02)
    follower.join(timeout=10)
    stop.set()
    return [(seen[s] - sent[s]) * 1000 for s in sent if s in seen]


def watch_latency(root: Path, n: int = 50) -> list[float]:
    """Baseline: a bare watchfiles.watch (same debounce and step) seeing a raw append, ms."""
    folder = root / f"raw-watch{time.monotonic_ns()}"
    folder.mkdir()
    seen: list[float] = []
    ready, stop = threading.Event(), threading.Event()

    def run() -> None:
        for changes in watch(
            folder,
            debounce=20,
            step=10,
            stop_event=stop,
            yield_on_timeout=True,
            rust_timeout=100,
            recursive=False,
        ):
            ready.set()  # the first (empty) yield: the watch is up
            if changes and len(seen) < n:
                seen.append(time.perf_counter())
            if stop.is_set():
                return

    watcher = threading.Thread(target=run)
    watcher.start()
    ready.wait(5)
    line = encode(EVENT) + b"\n"
    sent: list[float] = []
    with open(folder / "events.jsonl", "ab", buffering=0) as log:
        for _ in range(n):
            log.write(line)
            sent.append(time.perf_counter())
            time.sleep(0.02)
    stop.set()
    watcher.join(timeout=10)
    # each notification against the last write before it (debounce may merge two writes)
    return [(got - sent[bisect.bisect(sent, got) - 1]) * 1000 for got in seen if got > sent[0]]


def median_of(runs: int, measure: Callable[[], float]) -> float:
    """The median of ``runs`` repetitions (these machines are noisy)."""
    return statistics.median(measure() for _ in range(runs))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as name:
        report(Path(name))


def report(root: Path) -> None:
    runs = 5
    print(f"median of {runs} runs each")
    print("| mode | ocactors appends/s | baseline appends/s | ratio |")
    print("|---|---|---|---|")
    sync_base = median_of(runs, lambda: raw_baseline(root / "raw-sync", 2000, sync=True))
    nosync_base = median_of(runs, lambda: raw_baseline(root / "raw", 50_000, sync=False))
    for mode, n, threads, base in (
        ("always (1 thread)", 2000, 1, sync_base),
        ("batch (1 thread, wait each)", 2000, 1, sync_base),
        ("batch (16 threads, wait each)", 16_000, 16, sync_base),
        ("never (1 thread)", 50_000, 1, nosync_base),
    ):
        durability = mode.split()[0]
        rate = median_of(runs, partial(journal_rate, root, durability, n, threads))
        print(f"| {mode} | {rate:,.0f} | {base:,.0f} | {rate / base:.2f} |")
    ours, bare = sorted(follow_latency(root)), sorted(watch_latency(root))
    print("\n| follow latency ms | median | p95 |\n|---|---|---|")
    for name, delays in (
        ("ocactors follow (durable append -> yielded)", ours),
        ("baseline: bare watchfiles.watch (write -> notified)", bare),
    ):
        p95 = delays[int(len(delays) * 0.95) - 1]
        print(f"| {name} | {statistics.median(delays):.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
