"""The reviewer's first prompt: goal, tasks with files, diff stat, checks, within a fixed budget."""

from __future__ import annotations

import pytest

from ocactors.actors.roles import REVIEW_BUDGET, clip, reviewer_brief, task_overview
from ocactors.actors.state import MissionState, TaskState, TaskStatus
from ocactors.events.catalogue import Finding, TaskSpec

GOAL = "Build calc: add, sub, mul and div over a command line, with tests for each"


def mission(count: int, *, failed: int = 0, summary_words: int = 25) -> MissionState:
    tasks = {}
    for n in range(count):
        status: TaskStatus = "failed" if n >= count - failed else "done"
        spec = TaskSpec(
            id=f"T{n}",
            title=f"write module {n} of the calculator",
            files=[f"calc/part_{n}.py", f"tests/test_part_{n}.py"],
        )
        summary = " ".join(["implemented"] * summary_words) if status == "done" else ""
        tasks[spec.id] = TaskState(spec=spec, iteration=1, status=status, summary=summary)
    return MissionState(goal=GOAL, tasks=tasks)


def diff_stat(count: int) -> str:
    lines = [f" calc/part_{n}.py | 12 ++++++++----" for n in range(count)]
    return "\n".join([*lines, f" {count} files changed, 800 insertions(+), 400 deletions(-)"])


@pytest.mark.parametrize("count", [50, 200, 1000])
def test_the_first_prompt_stays_within_budget_whatever_the_number_of_tasks(count: int) -> None:
    brief = reviewer_brief(mission(count), "reviewer#1.1", "pytest -q", diff_stat=diff_stat(count))
    assert len(brief.brief.encode()) <= REVIEW_BUDGET
    assert brief.brief.startswith(f"Goal: {GOAL}")
    assert "`pytest -q`" in brief.brief and "files changed" in brief.brief
    assert "read_file" in brief.brief  # it is told to read the details with its tools


def test_a_small_mission_lists_every_task_with_its_files_and_summary() -> None:
    brief = reviewer_brief(mission(50, summary_words=6), "reviewer#1.1", "pytest -q").brief
    line = "- T{0} [calc/part_{0}.py, tests/test_part_{0}.py] write module {0} of the calculator: "
    assert all(line.format(n) + "implemented" in brief for n in range(50))
    assert "more tasks" not in brief


def test_a_large_mission_keeps_the_failed_tasks_and_counts_the_rest() -> None:
    overview = task_overview(list(mission(1000, failed=3).tasks.values()), 9_000)
    assert len(overview.encode()) <= 9_000
    assert all(f"- T{n} [" in overview for n in (997, 998, 999))
    assert overview.splitlines()[-1].startswith("- ... and ")
    listed = sum(line.startswith("- T") for line in overview.splitlines())
    assert listed > 50 and f"and {1000 - listed} more tasks ({1000 - listed} done)" in overview
    assert f"calc/ {1000 - listed}, tests/ {1000 - listed}." in overview


def test_a_long_checks_text_keeps_its_end_and_findings_are_carried() -> None:
    checks = "pytest -q\n" + "ok\n" * 2000 + "FAILED tests/test_calc.py::test_div - ZeroDivision"
    state = mission(10)
    state = MissionState(
        goal=state.goal,
        tasks=state.tasks,
        findings=(Finding(file="calc/div.py", problem="division by zero is not handled"),),
    )
    brief = reviewer_brief(state, "reviewer#2.1", checks).brief
    assert "FAILED tests/test_calc.py::test_div" in brief and "bytes left out" in brief
    assert "calc/div.py: division by zero is not handled" in brief
    assert "(none found" in reviewer_brief(state, "r", None).brief


def test_clip_keeps_whole_characters_within_the_limit() -> None:
    text = "é" * 5000
    for tail in (False, True):
        clipped = clip(text, 1000, tail=tail)
        assert len(clipped.encode()) <= 1000 and "é" in clipped
    assert clip("short", 1000) == "short"


def test_every_part_at_its_cap_still_fits() -> None:
    findings = tuple(Finding(file=f"f{n}.py", problem="p" * 200) for n in range(50))
    base = mission(1000, failed=2)
    state = MissionState(goal="g" * 5000, tasks=base.tasks, findings=findings)
    brief = reviewer_brief(state, "r", "x\n" * 3000, diff_stat=diff_stat(1000)).brief
    assert len(brief.encode()) <= REVIEW_BUDGET
