"""The role protocol: each role's finishing tool, its prompt, and the brief it is given.

The finishing tools are the contract every model plays against: a session ends only when the
model calls ``submit_plan``, ``finish_task`` or ``submit_review`` with arguments that pass the
checks below; anything else goes back to the model as a tool error it can fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from ocactors.actors.plan import PlanError, validate_plan
from ocactors.actors.session import FinalTool, SessionBrief
from ocactors.actors.state import MissionState, TaskState
from ocactors.events.catalogue import Finding, TaskSpec
from ocactors.tools import ToolContext, ToolError, ToolSpec

# --- finishing tools' arguments -------------------------------------------------------


class PlanTask(msgspec.Struct, kw_only=True):
    """One task as the planner writes it."""

    id: str
    title: str
    files: list[str]
    instructions: str = ""
    depends_on: list[str] = []


class SubmitPlan(msgspec.Struct, kw_only=True):
    """Arguments of submit_plan."""

    tasks: list[PlanTask]


class FinishTask(msgspec.Struct, kw_only=True):
    """Arguments of finish_task."""

    summary: str


class ReviewFinding(msgspec.Struct, kw_only=True):
    """One finding as the reviewer writes it."""

    file: str
    problem: str
    task_id: str | None = None


class SubmitReview(msgspec.Struct, kw_only=True):
    """Arguments of submit_review."""

    approved: bool
    findings: list[ReviewFinding] = []


def _handled_by_session(ctx: ToolContext, args: Any) -> str:
    raise ToolError("this finishing tool is handled by the session")


def plan_tool(existing_ids: Sequence[str]) -> FinalTool:
    """submit_plan: the plan must validate (ids, dependencies, no cycles, paths)."""

    def accept(args: SubmitPlan) -> dict[str, Any]:
        specs = [TaskSpec(**msgspec.structs.asdict(task)) for task in args.tasks]
        try:
            tasks = validate_plan(specs, existing_ids)
        except PlanError as error:
            raise ToolError(f"plan rejected: {error}. Fix it and call submit_plan again.") from None
        return {"tasks": msgspec.to_builtins(tasks)}

    spec = ToolSpec(
        name="submit_plan",
        description="Submit the whole plan: file-level tasks with ids and dependencies.",
        args_type=SubmitPlan,
        run=_handled_by_session,
    )
    return FinalTool(spec, accept)


def finish_tool(workspace: Path, files: Sequence[str]) -> FinalTool:
    """finish_task: every owned file must exist, so a worker cannot finish by forgetting."""

    def accept(args: FinishTask) -> dict[str, Any]:
        missing = [f for f in files if not (workspace / f).exists()]
        if missing:
            raise ToolError(
                f"you own {', '.join(missing)} but it does not exist yet; write it first"
            )
        if not args.summary.strip():
            raise ToolError("summary is empty; say in a sentence what you built")
        return {"summary": args.summary}

    spec = ToolSpec(
        name="finish_task",
        description="Call when your files are written and work; summarise what you built.",
        args_type=FinishTask,
        run=_handled_by_session,
    )
    return FinalTool(spec, accept)


def review_tool() -> FinalTool:
    """submit_review: a rejection must say what to fix."""

    def accept(args: SubmitReview) -> dict[str, Any]:
        if not args.approved and not args.findings:
            raise ToolError("approved is false but findings is empty; list what must change")
        findings = [
            Finding(file=f.file, problem=f.problem, task_id=f.task_id) for f in args.findings
        ]
        return {"approved": args.approved, "findings": msgspec.to_builtins(findings)}

    spec = ToolSpec(
        name="submit_review",
        description="Give the verdict: approved, or findings (file and problem) to fix.",
        args_type=SubmitReview,
        run=_handled_by_session,
    )
    return FinalTool(spec, accept)


# --- prompts and briefs ---------------------------------------------------------------


@cache
def system_prompt(role: str) -> str:
    """The role's prompt file shipped in the package (actors/prompts/<role>.md)."""
    return resources.files("ocactors.actors").joinpath(f"prompts/{role}.md").read_text("utf-8")


def planner_brief(state: MissionState, session: str, workspace_listing: str) -> SessionBrief:
    """The planner's brief: the goal, the workspace, and in later iterations what to fix."""
    parts = [f"Goal: {state.goal}", f"Workspace files:\n{workspace_listing or '(empty)'}"]
    if state.findings:
        parts.append("Earlier tasks:\n" + _task_lines(state.tasks.values()))
        parts.append(
            "The review found these problems; plan fix tasks for them:\n" + _findings(state)
        )
    if state.verify and not state.verify.passed:
        parts.append(f"The checks `{state.verify.command}` failed:\n{state.verify.output[-2000:]}")
    return SessionBrief(
        session=session,
        actor="planner",
        role="planner",
        system=system_prompt("planner"),
        brief="\n\n".join(parts),
        final=plan_tool(list(state.tasks)),
    )


def worker_brief(
    state: MissionState,
    task: TaskState,
    session: str,
    workspace: Path,
    user_edits: Sequence[str] = (),
) -> SessionBrief:
    """The worker's brief: its task, the files it owns, and what its dependencies built.

    ``user_edits`` are the task's files that held the user's uncommitted changes when the
    mission began: the worker is told those lines are the user's, to keep them.
    """
    spec = task.spec
    parts = [
        f"Project goal: {state.goal}",
        f"Your task {spec.id}: {spec.title}",
        f"Files you own (only these may be written): {', '.join(spec.files)}",
        f"Instructions:\n{spec.instructions or spec.title}",
    ]
    deps = [state.tasks[d] for d in spec.depends_on if d in state.tasks]
    if deps:
        parts.append("Already built by tasks you depend on:\n" + _task_lines(deps))
    if user_edits:
        parts.append(
            "These files hold the user's own uncommitted changes: "
            f"{', '.join(user_edits)}. Those lines are the user's work; keep them unless "
            "your task says to change exactly them."
        )
    return SessionBrief(
        session=session,
        actor=f"worker:{spec.id}",
        role="worker",
        system=system_prompt("worker"),
        brief="\n\n".join(parts),
        final=finish_tool(workspace, spec.files),
        task_id=spec.id,
    )


# The reviewer's first prompt stays within REVIEW_BUDGET bytes whatever the mission's size
# (16 KB at 1,000 tasks): each part has its own cap, and the task list degrades from full
# lines to short ones to a count.  The reviewer reads the rest with its tools.
REVIEW_BUDGET = 16 * 1024
REVIEW_CAPS = {"goal": 1_500, "tasks": 9_000, "diff": 2_000, "checks": 1_500, "findings": 1_500}
SUMMARY_CHARS = 120
FILES_SHOWN = 3
READ_MORE = (
    "This is an overview, not the work itself: read the files that matter with read_file, "
    "grep and list_files, and run the checks with run_command before you judge. Do not "
    "approve from the developers' summaries alone."
)


def reviewer_brief(
    state: MissionState, session: str, verify_command: str | None, *, diff_stat: str = ""
) -> SessionBrief:
    """The reviewer's brief: the goal, a compact list of tasks with their files, the diff
    stat and the checks, within REVIEW_BUDGET bytes however many tasks there are.

    ``verify_command`` is the project's checks as text: a command (shown as such), or a
    longer text such as the checks and their result (its end is kept, where failures are).
    """
    caps = REVIEW_CAPS
    parts = [
        f"Goal: {clip(state.goal, caps['goal'])}",
        "Tasks (id [files] title: what the developer says they built):\n"
        + task_overview(list(state.tasks.values()), caps["tasks"]),
    ]
    if diff_stat.strip():
        parts.append("Changes (diff stat):\n" + clip(diff_stat.strip(), caps["diff"], tail=True))
    parts.append(_checks_part(verify_command, caps["checks"]))
    if state.findings:
        parts.append("The last review found (check these are fixed):\n" + _findings_text(state))
    parts.append(READ_MORE)
    return SessionBrief(
        session=session,
        actor="reviewer",
        role="reviewer",
        system=system_prompt("reviewer"),
        brief="\n\n".join(parts),
        final=review_tool(),
    )


def _checks_part(checks: str | None, cap: int) -> str:
    text = (checks or "").strip()
    if not text:
        return "The project's checks: (none found; read the code instead)"
    if "\n" not in text and len(text) <= 200:
        return f"The project's checks: `{text}`"
    return "The project's checks:\n" + clip(text, cap, tail=True)


def _findings_text(state: MissionState) -> str:
    return clip(_findings(state), REVIEW_CAPS["findings"])


def task_overview(tasks: Sequence[TaskState], budget: int) -> str:
    """Every task in full if that fits ``budget`` bytes; else the tasks that matter most
    (trouble first, then the latest iteration) in full, then short, then a count."""
    full = [_full_line(task) for task in tasks]
    if _size(full) <= budget:
        return "\n".join(full)
    order = {id(task): index for index, task in enumerate(tasks)}
    ranked = sorted(tasks, key=lambda t: (_TROUBLE.get(t.status, 1), -t.iteration, order[id(t)]))
    chosen: dict[int, str] = {}
    used, room = 0, budget - 200  # room for the closing count
    for task in ranked:
        line = _full_line(task) if used < budget // 2 else _short_line(task)
        if used + _size([line]) > room:
            break
        chosen[order[id(task)]] = line
        used += _size([line])
    lines = [chosen[index] for index in sorted(chosen)]
    rest = [task for task in tasks if order[id(task)] not in chosen]
    return "\n".join([*lines, _unlisted(rest)] if rest else lines)


_TROUBLE = {"failed": 0, "interrupted": 0, "running": 0, "pending": 0}


def _full_line(task: TaskState) -> str:
    note = f": {_one_line(task.summary, SUMMARY_CHARS)}" if task.summary else f" ({task.status})"
    return f"- {task.spec.id} [{', '.join(task.spec.files)}] {task.spec.title}{note}"


def _short_line(task: TaskState) -> str:
    files = task.spec.files[:FILES_SHOWN]
    more = f", +{len(task.spec.files) - FILES_SHOWN}" if len(task.spec.files) > FILES_SHOWN else ""
    status = "" if task.status == "done" else f" ({task.status})"
    return f"- {task.spec.id} [{', '.join(files)}{more}]{status}"


def _unlisted(rest: Sequence[TaskState]) -> str:
    counts: dict[str, int] = {}
    for task in rest:
        counts[task.status] = counts.get(task.status, 0) + 1
    states = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    folders: dict[str, int] = {}
    for path in (f for task in rest for f in task.spec.files):
        folder = path.rsplit("/", 1)[0] + "/" if "/" in path else "./"
        folders[folder] = folders.get(folder, 0) + 1
    top = sorted(folders.items(), key=lambda item: (-item[1], item[0]))[:8]
    where = ", ".join(f"{folder} {n}" for folder, n in top)
    return (
        f"- ... and {len(rest)} more tasks ({states}) not listed; their files by folder: "
        f"{where}. list_files and read_file show their work"
    )


def _size(lines: Iterable[str]) -> int:
    return sum(len(line.encode()) + 1 for line in lines)


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def clip(text: str, limit: int, *, tail: bool = False) -> str:
    """``text`` within ``limit`` UTF-8 bytes: its start (or its end, with ``tail``) and a
    note of how much was left out."""
    data = text.encode()
    if len(data) <= limit:
        return text
    keep = limit - 40
    cut = data[-keep:] if tail else data[:keep]
    kept = cut.decode("utf-8", errors="ignore")
    note = f"[... {len(data) - len(cut):,} bytes left out]"
    return f"{note}\n{kept}" if tail else f"{kept}\n{note}"


def _task_lines(tasks: Any) -> str:
    lines = []
    for task in tasks:
        note = f": {task.summary}" if task.summary else f" ({task.status})"
        lines.append(f"- {task.spec.id} [{', '.join(task.spec.files)}] {task.spec.title}{note}")
    return "\n".join(lines)


def _findings(state: MissionState) -> str:
    return "\n".join(
        f"- {f.file}: {f.problem}" + (f" (task {f.task_id})" if f.task_id else "")
        for f in state.findings
    )
