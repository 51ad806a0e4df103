"""Plan validation: what the Planner submits must be a schedulable DAG of file-level tasks.

An invalid plan is not an exception that crosses actors: :func:`validate_plan` raises
:class:`PlanError`, and the Planner's session hands its message back to the model as a tool
error, so a budget model can read what was wrong and submit again.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence

from ocactors.events.catalogue import TaskSpec

FORBIDDEN_ROOTS = (".opencode", ".git")
MAX_TASKS = 1000


class PlanError(ValueError):
    """The plan cannot be scheduled; the message tells the model what to fix."""


def validate_plan(tasks: Sequence[TaskSpec], existing_ids: Iterable[str] = ()) -> list[TaskSpec]:
    """Return the plan with normalised paths and collision-free ids, or raise PlanError.

    Ids are kept as the planner gave them when unique in the mission; an id that an earlier
    iteration already used gets a suffix (``T1`` -> ``T1.2``), and dependencies follow.
    """
    if not tasks:
        raise PlanError("the plan has no tasks; submit at least one task")
    if len(tasks) > MAX_TASKS:
        raise PlanError(f"the plan has {len(tasks)} tasks; at most {MAX_TASKS} are allowed")
    _check_unique_ids(tasks)
    existing = set(existing_ids)
    normalised = [_normalise(task) for task in tasks]
    _check_dependencies(normalised, existing)
    return _rename_collisions(normalised, existing)


def _check_unique_ids(tasks: Sequence[TaskSpec]) -> None:
    seen: set[str] = set()
    for task in tasks:
        if not task.id.strip():
            raise PlanError(f"task {task.title!r} has an empty id")
        if task.id in seen:
            raise PlanError(f"task id {task.id!r} is used twice; every task needs its own id")
        seen.add(task.id)


def _normalise(task: TaskSpec) -> TaskSpec:
    if not task.files:
        raise PlanError(f"task {task.id!r} lists no files; name the files it creates or edits")
    files = sorted({normalise_path(path, task.id) for path in task.files})
    return TaskSpec(
        id=task.id.strip(),
        title=task.title,
        files=files,
        instructions=task.instructions,
        depends_on=list(dict.fromkeys(task.depends_on)),
    )


def normalise_path(path: str, task_id: str) -> str:
    """A workspace-relative POSIX path, or PlanError saying why it is not one."""
    cleaned = path.strip().replace("\\", "/")
    if not cleaned or cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise PlanError(f"task {task_id!r}: {path!r} must be a path relative to the workspace")
    normal = posixpath.normpath(cleaned)
    if normal == ".." or normal.startswith("../") or normal == ".":
        raise PlanError(f"task {task_id!r}: {path!r} leads outside the workspace")
    if normal.split("/", 1)[0] in FORBIDDEN_ROOTS:
        raise PlanError(f"task {task_id!r}: {path!r} is inside {normal.split('/', 1)[0]}/")
    return normal


def _check_dependencies(tasks: Sequence[TaskSpec], existing: set[str]) -> None:
    """Dependencies name tasks of this plan or tasks of earlier iterations."""
    ids = {task.id for task in tasks} | existing
    for task in tasks:
        for dep in task.depends_on:
            if dep not in ids:
                raise PlanError(f"task {task.id!r} depends on unknown task {dep!r}")
            if dep == task.id:
                raise PlanError(f"task {task.id!r} depends on itself")
    local = {task.id for task in tasks}
    cycle = find_cycle({t.id: [d for d in t.depends_on if d in local] for t in tasks})
    if cycle:
        raise PlanError("the dependencies form a cycle: " + " -> ".join(cycle))


def find_cycle(graph: dict[str, list[str]]) -> list[str]:
    """One dependency cycle as a path (first node repeated at the end), or []."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in graph:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, index = stack.pop()
            if index == 0:
                state[node] = 1
                path.append(node)
            deps = graph.get(node, [])
            if index < len(deps):
                stack.append((node, index + 1))
                dep = deps[index]
                if state.get(dep) == 1:
                    return [*path[path.index(dep) :], dep]
                if not state.get(dep):
                    stack.append((dep, 0))
            else:
                state[node] = 2
                path.pop()
    return []


def _rename_collisions(tasks: list[TaskSpec], existing: set[str]) -> list[TaskSpec]:
    renames: dict[str, str] = {}
    taken = existing | {task.id for task in tasks}
    for task in tasks:
        if task.id in existing:
            renames[task.id] = _fresh_id(task.id, taken)
            taken.add(renames[task.id])
    if not renames:
        return tasks
    return [
        TaskSpec(
            id=renames.get(task.id, task.id),
            title=task.title,
            files=task.files,
            instructions=task.instructions,
            depends_on=[renames.get(dep, dep) for dep in task.depends_on],
        )
        for task in tasks
    ]


def _fresh_id(base: str, taken: set[str]) -> str:
    n = 2
    while f"{base}.{n}" in taken:
        n += 1
    return f"{base}.{n}"
