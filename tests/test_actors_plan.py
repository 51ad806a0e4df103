"""Plan validation: the checks a planner's submit_plan must pass."""

from __future__ import annotations

import pytest

from ocactors.actors.plan import PlanError, find_cycle, validate_plan
from ocactors.events.catalogue import TaskSpec


def task(tid: str, files: list[str], deps: list[str] | None = None) -> TaskSpec:
    return TaskSpec(id=tid, title=f"build {tid}", files=files, depends_on=deps or [])


def test_a_valid_plan_keeps_ids_and_normalises_paths() -> None:
    plan = validate_plan([task("T1", ["./app/../app/main.py"]), task("T2", ["t.py"], ["T1"])])
    assert [t.id for t in plan] == ["T1", "T2"]
    assert plan[0].files == ["app/main.py"]


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([], "no tasks"),
        ([task("T1", ["a.py"]), task("T1", ["b.py"])], "used twice"),
        ([task("T1", ["a.py"], ["T9"])], "unknown task 'T9'"),
        ([task("T1", ["a.py"], ["T1"])], "depends on itself"),
        ([task("T1", ["a.py"], ["T2"]), task("T2", ["b.py"], ["T1"])], "cycle"),
        ([task("T1", ["/etc/passwd"])], "relative"),
        ([task("T1", ["../x.py"])], "outside"),
        ([task("T1", [".opencode/x"])], ".opencode"),
        ([task("T1", [".git/config"])], ".git"),
        ([task("T1", [])], "no files"),
        ([task(" ", ["a.py"])], "empty id"),
    ],
)
def test_invalid_plans_are_refused_with_a_reason(tasks: list[TaskSpec], message: str) -> None:
    with pytest.raises(PlanError, match=message.replace(".", r"\.")):
        validate_plan(tasks)


def test_ids_used_by_earlier_iterations_get_a_suffix_and_dependencies_follow() -> None:
    plan = validate_plan([task("T1", ["a.py"]), task("T2", ["b.py"], ["T1"])], existing_ids={"T1"})
    assert [t.id for t in plan] == ["T1.2", "T2"]
    assert plan[1].depends_on == ["T1.2"]


def test_fix_tasks_may_depend_on_earlier_tasks() -> None:
    plan = validate_plan([task("F1", ["a.py"], ["T1"])], existing_ids={"T1"})
    assert plan[0].depends_on == ["T1"]


def test_find_cycle_reports_the_loop() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": [], "c": ["a", "b"]}) == []
