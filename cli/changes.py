"""What a mission changed, for people: files with +/- lines and the commands to see or undo it.

Read from the mission's history (git commits under ``refs/ocactors/<id>``, or the file
baseline), never from the log alone: the history is what ``ocactors diff`` and ``undo`` use,
so the summary and the commands always agree.
"""

from __future__ import annotations

from pathlib import Path

from ocactors.actors.history import HistoryError, open_history
from ocactors.events import MissionPaths

MAX_FILES = 20


def change_lines(workspace: Path, paths: MissionPaths) -> list[str]:
    """The files the mission changed and the next commands; empty when it changed nothing."""
    try:
        history = open_history(workspace, paths.root, paths.id)
        changes = history.changes()
        users = set(history.user_changed([c.path for c in changes]))
    except (HistoryError, OSError):
        return []
    if not changes:
        return []
    added = sum(c.added for c in changes)
    removed = sum(c.removed for c in changes)
    lines = [f"changed {len(changes)} file(s), +{added} -{removed}:"]
    for change in changes[:MAX_FILES]:
        note = "  (held your uncommitted edits)" if change.path in users else ""
        lines.append(f"  {change.kind:<8} {change.path} +{change.added} -{change.removed}{note}")
    if len(changes) > MAX_FILES:
        lines.append(f"  ... and {len(changes) - MAX_FILES} more")
    lines.append(f"see the changes: ocactors diff {paths.id}")
    lines.append(f"undo them:       ocactors undo {paths.id}")
    return lines
