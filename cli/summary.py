"""The end of a mission, for people and for scripts: how it ended, what it changed, what next.

One :class:`Summary` is built from the folded state and the mission's history (the files and
+/- lines come from the same place ``ocactors diff`` and ``undo`` read, so the three always
agree).  It is printed at the end of ``task``, ``resume``, ``demo`` and ``replay --fork-at``,
added to ``status`` for a mission that no longer runs, and is the ``summary`` object of
``status --json``.  Nothing here reads the clock: the wall time is the mission's own running
time as the log records it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ocactors.actors.history import HistoryError, open_history
from ocactors.actors.state import MissionState, Tokens
from ocactors.events import MissionPaths
from ocactors.missions import active_seconds, clock, shorten

MAX_FILES = 20
WORDS = {"sealed": "SEALED", "failed": "FAILED", "stopped": "STOPPED", "crashed": "CRASHED"}
RESUMABLE = ("stopped", "failed", "crashed")


@dataclass(frozen=True)
class FileLines:
    """One file the mission changed: how, with how many lines added and removed."""

    path: str
    kind: str
    added: int
    removed: int
    held_user_edits: bool = False


@dataclass(frozen=True)
class Checks:
    """The last run of the project's checks."""

    command: str
    passed: bool
    exit_code: int
    duration_s: float
    iteration: int


@dataclass(frozen=True)
class RoleUse:
    """Tokens (and cost, where the state knows it) of one role."""

    prompt: int
    completion: int
    total: int
    cost: float | None = None


@dataclass(frozen=True)
class Summary:
    """Everything the end of a mission says, as data (``as_json``) and as lines."""

    mission: str
    state: str
    reason: str
    detail: str
    why: str
    goal: str
    workspace: str
    iterations: int
    max_iterations: int
    tasks_total: int
    tasks_done: int
    tasks_failed: int
    files: tuple[FileLines, ...]
    added: int
    removed: int
    history: str
    checks: Checks | None
    tokens: dict[str, RoleUse]
    total_tokens: int
    cost: float | None
    wall_time_s: float
    next: tuple[str, ...]
    log: str


def build(
    state: MissionState,
    word: str,
    paths: MissionPaths,
    workspace: Path,
    *,
    resume: str = "ocactors resume {id}",
) -> Summary:
    """The summary of ``state`` (``word``: running, sealed, failed, stopped or crashed).

    ``resume`` is the command that carries this kind of mission on (a demo resumes offline
    with ``ocactors demo --resume``); ``{id}`` and ``{workspace}`` are filled in.
    """
    files, history = _files(workspace, paths)
    tokens = {role: _use(used) for role, used in state.tokens.items()}
    return Summary(
        mission=paths.id,
        state=word,
        reason=state.outcome,
        detail=state.detail,
        why=_why(state, word),
        goal=state.goal,
        workspace=str(workspace),
        iterations=state.iteration,
        max_iterations=state.settings.max_iterations,
        tasks_total=len(state.tasks),
        tasks_done=len(state.tasks_in("done")),
        tasks_failed=len(state.tasks_in("failed")),
        files=tuple(files),
        added=sum(f.added for f in files),
        removed=sum(f.removed for f in files),
        history=history,
        checks=_checks(state),
        tokens=tokens,
        total_tokens=state.total_tokens,
        cost=_cost(state, tokens),
        wall_time_s=round(active_seconds(state), 3),
        next=_next(word, paths.id, workspace, bool(files), resume),
        log=str(paths.events),
    )


def as_json(summary: Summary) -> dict[str, Any]:
    """One JSON-ready object; ``cost`` keys appear only where a cost is known."""
    data = asdict(summary)
    data["wall_time"] = clock(summary.wall_time_s)
    for use in data["tokens"].values():
        if use["cost"] is None:
            del use["cost"]
    if data["cost"] is None:
        del data["cost"]
    return data


def lines(summary: Summary) -> list[str]:
    """The summary for people: verdict and why, counts, files, checks, tokens, time, next."""
    s = summary
    out = [f"mission {s.mission} {WORDS.get(s.state, s.state.upper())}: {s.why}"]
    out.append(
        f"  iterations {s.iterations}/{s.max_iterations}, tasks {s.tasks_done} done, "
        f"{s.tasks_failed} failed (of {s.tasks_total}), wall time {clock(s.wall_time_s)}"
    )
    out.append(f"  checks: {_checks_words(s.checks)}")
    out.append(f"  tokens: {_tokens_words(s)}")
    out.extend(_file_lines(s))
    if s.next:
        out.append("next:")
        out.extend(f"  {command}" for command in s.next)
    out.append(f"log: {_here(Path(s.log), Path(s.workspace))}")
    return out


# --- building -------------------------------------------------------------------------


def _files(workspace: Path, paths: MissionPaths) -> tuple[list[FileLines], str]:
    """The changed files from the mission's history, and which history ("git", "files")."""
    try:
        history = open_history(workspace, paths.root, paths.id)
        changes = history.changes()
        users = set(history.user_changed([c.path for c in changes]))
    except (HistoryError, OSError):
        return [], ""
    found = [FileLines(c.path, c.kind, c.added, c.removed, c.path in users) for c in changes]
    return found, history.kind


def _why(state: MissionState, word: str) -> str:
    """How it ended, in one line: the Commander's own words where it recorded some."""
    if word == "sealed" and state.verify is not None and state.verify.command == "none":
        return "every task done and the review approved; unverified: no checks ran (--verify none)"
    if word == "sealed":
        return "every task done, the review approved, the checks passed"
    if word == "running":
        return f"running ({state.phase}); a process is writing its log"
    if word == "crashed":
        return "its process ended without a final event (a kill or a crash)"
    if not state.outcome:
        return state.phase
    if state.detail.startswith(state.outcome):
        return state.detail  # "interrupted (SIGTERM)" says its reason already
    return f"{state.outcome}: {state.detail}" if state.detail else state.outcome


def _checks(state: MissionState) -> Checks | None:
    verify = state.verify
    if verify is None:
        return None
    return Checks(
        verify.command, verify.passed, verify.exit_code, verify.duration_s, verify.iteration
    )


def _use(used: Tokens) -> RoleUse:
    """A role's tokens, and its dollars when every turn of it had a known price."""
    cost = None if used.unpriced else used.cost_usd
    return RoleUse(used.prompt, used.completion, used.total, _money(cost))


def _cost(state: MissionState, tokens: dict[str, RoleUse]) -> float | None:
    """The state's own total if it keeps one, else the roles' costs added, else unknown."""
    costs = [use.cost for use in tokens.values()]
    if not costs or any(cost is None for cost in costs):
        return None  # an unpriced turn: the total is unknown, never "free"
    return round(sum(c for c in costs if c is not None), 6)


def _money(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _next(word: str, mission: str, workspace: Path, changed: bool, resume: str) -> tuple[str, ...]:
    """Commands to run next, ready to paste (``-C`` when the workspace is not here)."""
    where = "" if _is_cwd(workspace) else f" -C {workspace}"
    commands = []
    if changed:
        commands += [f"ocactors diff {mission}{where}", f"ocactors undo {mission}{where}"]
    commands.append(f"ocactors replay {mission}{where}")
    if word in RESUMABLE:
        commands.append(resume.format(id=mission, workspace=workspace) + _where(resume, where))
    return tuple(commands)


def _where(resume: str, where: str) -> str:
    """The resume template places the workspace itself when it names one."""
    return "" if "{workspace}" in resume else where


def _here(path: Path, workspace: Path) -> str:
    """A path inside the workspace, relative when the workspace is where we are."""
    inside = path.is_relative_to(workspace) and _is_cwd(workspace)
    return str(path.relative_to(workspace)) if inside else str(path)


def _is_cwd(workspace: Path) -> bool:
    try:
        return workspace.resolve() == Path.cwd().resolve()
    except OSError:
        return False


# --- lines ----------------------------------------------------------------------------


def _checks_words(checks: Checks | None) -> str:
    if checks is None:
        return "not run"
    if checks.command == "none":
        return "unverified: no checks run (--verify none)"
    if not checks.command:
        return "none found: the project has no automated checks (not a pass)"
    verdict = "passed" if checks.passed else f"FAILED (exit {checks.exit_code})"
    command = checks.command or "(none)"
    took = f"{checks.duration_s:.1f}s"
    return f"`{shorten(command, 100)}` {verdict} in {took} (iteration {checks.iteration})"


def _tokens_words(s: Summary) -> str:
    if not s.tokens:
        return "none"
    roles = ", ".join(f"{role} {use.total:,}{_dollars(use.cost)}" for role, use in s.tokens.items())
    return f"{roles} (total {s.total_tokens:,}{_dollars(s.cost)})"


def _dollars(cost: float | None) -> str:
    return f", ${cost:.4f}" if cost else ""


def _file_lines(s: Summary) -> list[str]:
    if not s.files:
        return ["  files: none changed"]
    out = [f"  changed {len(s.files)} file(s), +{s.added} -{s.removed}:"]
    for change in s.files[:MAX_FILES]:
        note = "  (held your uncommitted edits)" if change.held_user_edits else ""
        out.append(f"    {change.kind:<8} {change.path} +{change.added} -{change.removed}{note}")
    if len(s.files) > MAX_FILES:
        out.append(f"    ... and {len(s.files) - MAX_FILES} more")
    return out


# --- for status -----------------------------------------------------------------------


def status_text(state: MissionState, word: str, paths: MissionPaths, workspace: Path) -> list[str]:
    """What ``status`` adds for a mission no process runs: a blank line and the summary."""
    if word not in WORDS:
        return []
    return ["", *lines(build(state, word, paths, workspace))]


def status_json(
    state: MissionState, word: str, paths: MissionPaths, workspace: Path
) -> dict[str, Any]:
    """The ``summary`` object of ``status --json`` (the summary so far while it runs)."""
    return as_json(build(state, word, paths, workspace))
