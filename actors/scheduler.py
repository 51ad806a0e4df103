"""Which tasks may start now: dependencies done, files free, a slot open.

Pure functions of :class:`MissionState`, so the one-file-one-writer rule is tested without
threads: a task starts only when no running task holds a lease on any of its files, and two
ready tasks that share a file are never picked in the same round.
"""

from __future__ import annotations

from collections.abc import Iterator

from ocactors.actors.state import MissionState, TaskState

RESUMABLE = ("running", "interrupted")


def worker_slots(state: MissionState, running: int) -> int:
    """How many more worker sessions may start: ``--parallel`` capped by the session total."""
    limit = min(max(state.settings.parallel, 1), max(state.settings.max_sessions, 1))
    return max(limit - running, 0)


def ready_tasks(
    state: MissionState, slots: int, busy: frozenset[str] = frozenset()
) -> list[TaskState]:
    """Up to ``slots`` tasks to start now, in plan order; ``busy`` are tasks already in flight.

    A lease a task already holds (a resumed task after kill -9) does not block that task.
    """
    chosen: list[TaskState] = []
    claimed: dict[str, str] = dict(state.leases)
    for task in _candidates(state, busy):
        if len(chosen) >= slots:
            break
        if all(claimed.get(f, task.spec.id) == task.spec.id for f in task.spec.files):
            chosen.append(task)
            claimed.update(dict.fromkeys(task.spec.files, task.spec.id))
    return chosen


def _candidates(state: MissionState, busy: frozenset[str]) -> Iterator[TaskState]:
    """Resumable tasks first (their conversations are half done), then pending ones."""
    for statuses in (RESUMABLE, ("pending",)):
        for task in state.tasks.values():
            if task.status in statuses and task.spec.id not in busy and _deps_done(state, task):
                yield task


def _deps_done(state: MissionState, task: TaskState) -> bool:
    return all(
        dep in state.tasks and state.tasks[dep].status == "done" for dep in task.spec.depends_on
    )


def blocked(state: MissionState) -> list[TaskState]:
    """Pending tasks that can never start because a dependency failed for good."""
    failed = {t.spec.id for t in state.tasks_in("failed")}
    return [t for t in state.tasks_in("pending") if failed.intersection(t.spec.depends_on)]


def work_left(state: MissionState) -> bool:
    """True while any task is not done."""
    return any(task.status != "done" for task in state.tasks.values())
