"""The mission as a rich renderable: shared by the live view of ``task`` and by ``monitor``.

It draws only from a folded :class:`MissionState` (plus recent notable lines), so whatever a
person sees live can be rebuilt later from the log.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ocactors.actors.scheduler import RESUMABLE
from ocactors.actors.state import MissionState

STATUS_STYLE = {
    "pending": "dim",
    "running": "bold cyan",
    "interrupted": "yellow",
    "done": "green",
    "failed": "bold red",
}
PHASE_STYLE = {"sealed": "bold green", "failed": "bold red", "stopped": "bold yellow"}
TASK_ROWS = 30


def render(state: MissionState, recent: Sequence[str], now: float | None = None) -> RenderableType:
    """Header, task table, running sessions and the latest notable events."""
    parts: list[RenderableType] = [_header(state, now)]
    if state.tasks:
        parts.append(_tasks(state))
    if state.sessions:
        parts.append(_sessions(state, now))
    if recent:
        parts.append(Panel(Text("\n".join(recent[-8:])), title="events", border_style="dim"))
    return Group(*parts)


def _header(state: MissionState, now: float | None) -> Panel:
    counts = {s: len(state.tasks_in(s)) for s in ("done", "running", "pending", "failed")}
    queued = len([t for t in state.tasks.values() if t.status in ("pending", *RESUMABLE)])
    running = len(state.sessions)
    verify = state.verify
    checks = (
        "-" if verify is None else ("passed" if verify.passed else f"failed ({verify.exit_code})")
    )
    text = Text()
    text.append(f"{state.mission}  ", style="bold")
    text.append(state.phase.upper(), style=PHASE_STYLE.get(state.phase, "bold cyan"))
    text.append(
        f"  iteration {state.iteration}/{state.settings.max_iterations}"
        f"  tasks {counts['done']}/{len(state.tasks)} done, {counts['running']} running,"
        f" {queued - counts['running']} queued, {counts['failed']} failed"
        f"  sessions {running}  tokens {state.total_tokens:,}  checks {checks}"
        f"  elapsed {_elapsed(state.started_ts, now)}"
    )
    return Panel(text, title=_short(state.goal, 90), border_style="blue")


def _tasks(state: MissionState) -> Table:
    table = Table(expand=True, box=None, pad_edge=False)
    for column in ("task", "state", "files", "try", "title / summary"):
        table.add_column(column, overflow="ellipsis", no_wrap=True)
    tasks = list(state.tasks.values())
    shown = sorted(tasks, key=lambda t: t.status != "running")[:TASK_ROWS]
    for task in shown:
        table.add_row(
            task.spec.id,
            Text(task.status, style=STATUS_STYLE.get(task.status, "")),
            ", ".join(task.spec.files),
            str(task.attempts),
            _short(task.summary or task.spec.title, 70),
        )
    if len(tasks) > TASK_ROWS:
        table.add_row("...", "", f"{len(tasks) - TASK_ROWS} more", "", "")
    return table


def _sessions(state: MissionState, now: float | None) -> Table:
    table = Table(expand=True, box=None, title="sessions", title_justify="left")
    for column in ("session", "role", "step", "elapsed"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for info in list(state.sessions.values())[:20]:
        table.add_row(info.session, info.role, info.step, _elapsed(info.started, now))
    return table


def _elapsed(ts: str, now: float | None) -> str:
    if not ts:
        return "-"
    try:
        start = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "-"
    seconds = max(0, int((now if now is not None else time.time()) - start))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
