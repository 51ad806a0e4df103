"""The mission as a rich renderable that fits the terminal: ``task``'s live view and ``monitor``.

It draws only from a folded :class:`MissionState` (plus recent notable lines), so whatever a
person sees live can be rebuilt later from the log.

Fitting is decided at each redraw from the console's size, so a resized terminal is followed:

- nothing wraps: every line is composed for the width and cut with an ellipsis;
- the task id and state columns never shrink; the files column, then the title/summary give
  way first (at 80 columns the files column is gone, the summary is short);
- the frame is at most one line shorter than the screen (a frame as tall as the screen
  scrolls the header away): the header (phase, tasks, tokens, cost, checks, elapsed) always
  shows, then the task table, the running sessions and the latest events share the rest; a
  table that does not fit shows its running and most recent rows and a ``+N more`` line.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.text import Text

from ocactors.actors.prices import cached_share, cost_short
from ocactors.actors.scheduler import RESUMABLE
from ocactors.actors.state import MissionState, SessionInfo, TaskState
from ocactors.missions import active_seconds, clock

STATUS_STYLE = {
    "pending": "dim",
    "running": "bold cyan",
    "interrupted": "yellow",
    "done": "green",
    "failed": "bold red",
}
PHASE_STYLE = {"sealed": "bold green", "failed": "bold red", "stopped": "bold yellow"}
# Which tasks stay on screen when not all fit: running ones, then trouble, then the most
# recent (later iterations, later in the plan), then what is still to come.
SHOW_FIRST = {"running": 0, "failed": 1, "interrupted": 1, "done": 2, "pending": 3}
MIN_LINES = {"tasks": 4, "sessions": 4, "events": 3}  # a section smaller than this is hidden
GAP = "  "


def render(
    state: MissionState, recent: Sequence[str], now: float | None = None, *, fit: bool = True
) -> RenderableType:
    """The dashboard; with ``fit`` it keeps within the console's height, else only its width."""
    return Frame(state, tuple(recent), now, fit)


@dataclass(frozen=True)
class Frame:
    """A renderable that measures the console each time it is drawn."""

    state: MissionState
    recent: tuple[str, ...]
    now: float | None
    fit: bool

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Rich protocol: compose for this width and height."""
        height = max(options.size.height - 1, 8) if self.fit else None
        yield Group(*compose(self.state, self.recent, options.max_width, height, self.now))


def compose(
    state: MissionState,
    recent: Sequence[str],
    width: int,
    height: int | None,
    now: float | None = None,
) -> list[RenderableType]:
    """Header, task table, running sessions and the latest events, within width x height."""
    header = _header_lines(state, width - 4, now)
    sessions = list(state.sessions.values())
    wants = {
        "tasks": 1 + len(state.tasks) if state.tasks else 0,
        "sessions": 2 + len(sessions) if sessions else 0,
        "events": 2 + len(recent) if recent else 0,
    }
    room = None if height is None else height - len(header) - 2
    lines = wants if room is None else share(room, wants)
    parts: list[RenderableType] = [_panel(header, _short(state.goal, width - 8), "blue")]
    if lines["tasks"]:
        parts.append(Group(*_task_lines(state, width, lines["tasks"], now)))
    if lines["sessions"]:
        parts.append(Group(*_session_lines(sessions, width, lines["sessions"], now)))
    if lines["events"]:
        shown = [_cut(Text(r), width - 4) for r in recent[-(lines["events"] - 2) :]]
        parts.append(_panel(shown, "events", "dim"))
    return parts


def share(room: int, wants: dict[str, int]) -> dict[str, int]:
    """Lines per section: each its minimum in priority order while room lasts, then turns.

    The order of ``wants`` is the priority: the first section is the last to be hidden.
    """
    grant = dict.fromkeys(wants, 0)
    for name, want in wants.items():
        least = min(want, MIN_LINES[name])
        if 0 < least <= room:
            grant[name], room = least, room - least
        elif least > 0 and all(g == 0 for g in grant.values()):
            grant[name], room = room, 0  # a tiny screen: what is left, for the first section
    while room > 0 and any(0 < grant[n] < wants[n] for n in wants):
        for name in wants:
            if room > 0 and 0 < grant[name] < wants[name]:
                grant[name], room = grant[name] + 1, room - 1
    return grant


def _panel(lines: Sequence[Text], title: str, border: str) -> Panel:
    return Panel(Group(*lines), title=title, title_align="left", border_style=border)


def _header_lines(state: MissionState, width: int, now: float | None) -> list[Text]:
    """Mission id and phase first, then short pieces packed into as few lines as fit."""
    first = Text(f"{state.mission or '(no mission yet)'}  ", style="bold")
    first.append(state.phase.upper(), style=PHASE_STYLE.get(state.phase, "bold cyan"))
    lines = [first]
    for piece in _header_pieces(state, now):
        if lines[-1].cell_len + len(GAP) + len(piece) <= width:
            lines[-1].append(GAP + piece)
        else:
            lines.append(Text(piece))
    return [_cut(text, width) for text in lines]


def _header_pieces(state: MissionState, now: float | None) -> list[str]:
    counts: Counter[str] = Counter(task.status for task in state.tasks.values())
    queued = sum(counts[s] for s in ("pending", *RESUMABLE)) - counts["running"]
    verify = state.verify
    checks = (
        "-" if verify is None else "passed" if verify.passed else f"failed ({verify.exit_code})"
    )
    return [
        f"iteration {state.iteration}/{state.settings.max_iterations}",
        f"tasks {counts['done']}/{len(state.tasks)} done, {counts['running']} running, "
        f"{max(queued, 0)} queued, {counts['failed']} failed",
        f"sessions {len(state.sessions)}",
        _tokens_piece(state),
        *([f"cost {cost_short(state)}"] if state.tokens else []),
        f"checks {checks}",
        f"elapsed {elapsed(state, now)}",
    ]


def _tokens_piece(state: MissionState) -> str:
    """``tokens 12,345`` and, once a provider cached some, ``(80% cached)``."""
    share = cached_share(state.tokens.values())
    cached = f" ({share:.0%} cached)" if share else ""
    return f"tokens {state.total_tokens:,}{cached}"


def _task_lines(state: MissionState, width: int, room: int, now: float | None) -> list[Text]:
    tasks = list(state.tasks.values())
    shown = tasks if len(tasks) < room else _most_relevant(tasks, max(room - 2, 0))
    columns = _task_columns(shown, width)
    lines = [_cut(_row(columns, ("task", "state", "try", "files", "title / summary")), width)]
    lines[0].stylize("bold")
    for task in shown:
        cells = (task.spec.id, task.status, str(task.attempts), ", ".join(task.spec.files))
        row = _row(columns, (*cells, task.summary or task.spec.title))
        start = columns[0] + len(GAP)
        row.stylize(STATUS_STYLE.get(task.status, ""), start, start + columns[1])
        lines.append(_cut(row, width))
    if len(shown) < len(tasks):
        lines.append(_cut(Text(_more(tasks, shown), style="dim"), width))
    return lines


def _most_relevant(tasks: list[TaskState], count: int) -> list[TaskState]:
    """The ``count`` tasks to keep on screen, shown in plan order."""
    order = {id(task): index for index, task in enumerate(tasks)}
    ranked = sorted(tasks, key=lambda t: (SHOW_FIRST.get(t.status, 1), -t.iteration, -order[id(t)]))
    return sorted(ranked[:count], key=lambda t: order[id(t)])


def _more(tasks: list[TaskState], shown: list[TaskState]) -> str:
    hidden = Counter(t.status for t in tasks if t not in shown)
    return f"+{sum(hidden.values())} more: " + ", ".join(f"{n} {s}" for s, n in hidden.items())


def _task_columns(shown: list[TaskState], width: int) -> tuple[int, ...]:
    """Widths of id, state, try, files, summary: the first three never give way."""
    id_w = max([4, *(len(t.spec.id) for t in shown)])
    state_w = max([5, *(len(t.status) for t in shown)])
    rest = width - id_w - state_w - 3 - 3 * len(GAP)
    if rest < 12:  # no room for words: id, state and try only
        return (id_w, state_w, 3, 0, max(rest, 0))
    files = max([0, *(len(", ".join(t.spec.files)) for t in shown)])
    files_w = min(files, (rest - len(GAP)) * 2 // 5) if rest >= 40 else 0
    return (id_w, state_w, 3, files_w, rest - files_w - (len(GAP) if files_w else 0))


def _row(widths: tuple[int, ...], cells: Sequence[str]) -> Text:
    parts = [_fit(" ".join(cell.split()), w) for cell, w in zip(cells, widths, strict=True) if w]
    return Text(GAP.join(parts))


def _session_lines(
    sessions: list[SessionInfo], width: int, room: int, now: float | None
) -> list[Text]:
    shown = sessions if len(sessions) <= room - 2 else sessions[: max(room - 3, 0)]
    name_w = max([7, *(len(s.session) for s in shown)])
    widths = (name_w, 9, 7, max(width - name_w - 16 - 3 * len(GAP), 0))
    lines = [Text("sessions", style="bold"), _row(widths, ("session", "role", "elapsed", "step"))]
    lines[1].stylize("bold")
    for info in shown:
        lines.append(_row(widths, (info.session, info.role, _since(info.started, now), info.step)))
    if len(shown) < len(sessions):
        lines.append(Text(f"+{len(sessions) - len(shown)} more", style="dim"))
    return [_cut(text, width) for text in lines]


def elapsed(state: MissionState, now: float | None = None) -> str:
    """The mission's own running time: a finished mission's clock stands still, a fork's or
    a resumed mission's counts only the time it ran (not the pause, not the original)."""
    return clock(active_seconds(state, now))


def _since(ts: str, now: float | None) -> str:
    start = _timestamp(ts)
    if start is None:
        return "-"
    seconds = max(0, int((now if now is not None else time.time()) - start))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _timestamp(ts: str) -> float | None:
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() if ts else None
    except ValueError:
        return None


def _fit(text: str, width: int) -> str:
    """Exactly ``width`` characters: padded, or cut with an ellipsis."""
    return text.ljust(width) if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _cut(text: Text, width: int) -> Text:
    """One line no wider than ``width`` (the guarantee that nothing wraps)."""
    text = text.copy()
    text.no_wrap = True
    text.truncate(max(width, 1), overflow="ellipsis")
    text.rstrip()
    return text


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(limit - 3, 0)] + "..."
