"""A mission's history without git: the file baseline plus a snapshot per finished task.

Outside a git work tree (or where git cannot be used) the mission still knows each file as it
was before it first wrote it (``baseline/files/<rel>``, or ``baseline/created/<rel>`` for files
it created, kept by ``BaselineRecorder``).  A finished task adds a snapshot of its files under
``history/tasks/<nnnn>/`` (written in a temporary folder, then renamed, so a kill leaves either
the whole snapshot or none).  Diffs are rendered in git's format so ``git apply`` and
``patch -p1`` accept them, binary files as git binary patches.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import re
import shutil
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ocactors.actors.history_model import (
    ANY,
    Content,
    FileChange,
    HistoryError,
    Kind,
    Step,
    TaskCommit,
    UndoReport,
    Unknown,
    baseline_copy,
    clean_rel,
    format_stat,
    read_current,
    recorded_writes,
    restore,
    write_content,
)

NO_RECORD = "its content before the mission was not recorded"


@dataclass(frozen=True)
class Snapshot:
    """One finished task's files as they were when it finished."""

    id: str
    task_id: str
    title: str
    files: tuple[str, ...]
    folder: Path

    def content(self, rel: str) -> Content | None:
        """The file as the task left it (None: it did not exist)."""
        return read_current(self.folder / "files" / rel)


Span = tuple[str, Content | Unknown | None, Content | None]  # path, before, after


@dataclass(frozen=True)
class Ledger:
    """The file baseline and the snapshots, read once per operation."""

    root: Path
    mission_dir: Path
    writes: dict[str, bool]  # path -> existed before the mission
    snapshots: list[Snapshot]

    def paths(self) -> list[str]:
        """Every file the mission wrote or a task recorded."""
        return sorted({*self.writes, *(p for s in self.snapshots for p in s.files)})

    def before(self, path: str, upto: int = 0) -> Content | Unknown | None:
        """Before the mission, or before snapshot ``upto`` (the last earlier one holding it)."""
        for snap in reversed(self.snapshots[:upto]):
            if path in snap.files:
                return snap.content(path)
        existed = self.writes.get(path)
        if existed is None:
            return ANY
        return baseline_copy(self.mission_dir, path) if existed else None

    def last(self, path: str, within: list[Snapshot] | None = None) -> Snapshot | None:
        """The last snapshot (of all, or of ``within``) that holds ``path``."""
        for snap in reversed(self.snapshots if within is None else within):
            if path in snap.files:
                return snap
        return None


class FileHistory:
    """The history of one mission kept in its folder; ``reason`` says why not git."""

    kind = "files"
    ref: str | None = None

    def __init__(self, workspace: Path, mission_dir: Path, mission_id: str, reason: str) -> None:
        self.root = workspace
        self.mission_dir = mission_dir
        self.mission_id = mission_id
        self.reason: str | None = reason
        self.tasks_dir = mission_dir / "history" / "tasks"

    def begin(self) -> None:
        """Nothing to take: ``BaselineRecorder`` copies each file before its first write."""
        self.tasks_dir.mkdir(parents=True, exist_ok=True)

    def baseline(self) -> None:
        """No commit: the baseline is the copies under ``baseline/``."""

    def snapshots(self) -> list[Snapshot]:
        """The finished tasks, oldest first (half-written snapshots are not listed)."""
        found = []
        for folder in sorted(self.tasks_dir.glob("[0-9]*")) if self.tasks_dir.is_dir() else []:
            meta = json.loads((folder / "meta.json").read_text())
            files = tuple(meta["files"])
            found.append(
                Snapshot(f"files:{folder.name}", meta["task"], meta["title"], files, folder)
            )
        return found

    def task_commits(self) -> list[TaskCommit]:
        """The finished tasks, oldest first."""
        return [TaskCommit(s.task_id, s.id, s.title) for s in self.snapshots()]

    def commit_task(self, task_id: str, title: str, files: Iterable[str]) -> str:
        """Snapshot ``files`` as they are now; the same snapshot again after a crash."""
        paths = tuple(dict.fromkeys(clean_rel(f) for f in files))
        snapshots = self.snapshots()
        for old in snapshots:
            if old.task_id == task_id and old.files == paths and self._same_now(old):
                return old.id
        for stale in self.tasks_dir.glob("tmp-*"):
            shutil.rmtree(stale)  # a snapshot a kill interrupted
        name = f"{len(snapshots) + 1:04d}"
        draft = self.tasks_dir / f"tmp-{name}"
        for rel in paths:
            if (content := read_current(self.root / rel)) is not None:
                write_content(draft / "files" / rel, content)
        draft.mkdir(parents=True, exist_ok=True)
        meta = {"task": task_id, "title": " ".join(title.split()), "files": list(paths)}
        (draft / "meta.json").write_text(json.dumps(meta))
        draft.rename(self.tasks_dir / name)
        return f"files:{name}"

    def diff(self, task: str | None = None, stat: bool = False) -> str:
        """A git-style diff (``git apply`` accepts it), or a stat."""
        if stat:
            return format_stat(self.changes(task))
        parts = [render(path, a, b) for path, a, b in self._spans(task)]
        return b"".join(p for p in parts if p).decode(errors="surrogateescape")

    def changes(self, task: str | None = None) -> list[FileChange]:
        """Each changed file with its kind and +/- lines."""
        found = []
        for path, before, after in self._spans(task):
            if isinstance(before, Unknown) or (before is not None and before.same_as(after)):
                continue
            if before is None and after is None:
                continue
            kind: Kind = "created" if before is None else "deleted" if after is None else "modified"
            found.append(FileChange(path, kind, *count(before, after)))
        return sorted(found, key=lambda c: c.path)

    def undo(self, task: str | None = None, force: bool = False) -> UndoReport:
        """Put back what the mission (or ``task``) changed, from the copies kept."""
        steps = self._task_steps(task) if task is not None else self._mission_steps()
        return restore(self.root, steps, force)

    def user_changed(self, files: Iterable[str]) -> list[str]:
        """Unknown without git: the file baseline does not know what was committed."""
        return []

    # -- spans ----------------------------------------------------------------------------

    def _ledger(self) -> Ledger:
        return Ledger(
            self.root, self.mission_dir, recorded_writes(self.mission_dir), self.snapshots()
        )

    def _spans(self, task: str | None) -> list[Span]:
        book = self._ledger()
        if task is None:
            return [(p, book.before(p), self._left(p, book)) for p in book.paths()]
        mine = self._mine(task, book)
        return [
            (p, book.before(p, i), book.snapshots[i].content(p))
            for i in mine
            for p in book.snapshots[i].files
        ]

    def _mission_steps(self) -> list[Step]:
        book = self._ledger()
        steps = []
        for path in book.paths():
            before = book.before(path)
            if isinstance(before, Unknown):
                steps.append(Step(path, None, blocker=NO_RECORD))
            else:
                last = book.last(path)
                steps.append(Step(path, before, last.content(path) if last else ANY))
        return steps

    def _task_steps(self, task: str) -> list[Step]:
        book = self._ledger()
        mine = self._mine(task, book)
        steps: dict[str, Step] = {}
        for i in mine:
            for path in book.snapshots[i].files:
                before = book.before(path, i)
                if path in steps:
                    continue
                if isinstance(before, Unknown):
                    steps[path] = Step(path, None, blocker=NO_RECORD)
                    continue
                later = book.snapshots[mine[-1] + 1 :]
                who = next((f"task {s.task_id}" for s in later if path in s.files), None)
                own = book.last(path, book.snapshots[: mine[-1] + 1]) or book.snapshots[i]
                steps[path] = Step(path, before, own.content(path), later=who)
        return list(steps.values())

    def _left(self, path: str, book: Ledger) -> Content | None:
        """What the mission left: its last snapshot of the file, else the file now."""
        last = book.last(path)
        return last.content(path) if last else read_current(self.root / path)

    def _mine(self, task: str, book: Ledger) -> list[int]:
        mine = [i for i, s in enumerate(book.snapshots) if s.task_id == task]
        if not mine:
            known = ", ".join(dict.fromkeys(s.task_id for s in book.snapshots)) or "none yet"
            raise HistoryError(
                f"mission {self.mission_id} has no record of task {task!r} ({known})"
            )
        return mine

    def _same_now(self, snap: Snapshot) -> bool:
        return all(_same(snap.content(p), read_current(self.root / p)) for p in snap.files)


def _same(a: Content | None, b: Content | None) -> bool:
    return (a is None and b is None) or (a is not None and a.same_as(b))


# -- rendering in git's format ----------------------------------------------------------------


def render(path: str, before: Content | Unknown | None, after: Content | None) -> bytes:
    """One file's diff as git writes it (``b""`` when there is nothing to say)."""
    if isinstance(before, Unknown) or _same(before, after):
        return b""
    name = path.encode(errors="surrogateescape")
    head = [b"diff --git a/" + name + b" b/" + name + b"\n"]
    if before is None:
        head.append(b"new file mode %o\n" % after.mode)  # type: ignore[union-attr]
    elif after is None:
        head.append(b"deleted file mode %o\n" % before.mode)
    elif before.mode != after.mode:
        head.append(b"old mode %o\nnew mode %o\n" % (before.mode, after.mode))
    old, new = _data(before), _data(after)
    if _binary(old) or _binary(new):
        return b"".join(head) + binary_patch(before, after)
    a = b"a/" + name if before is not None else b"/dev/null"
    b = b"b/" + name if after is not None else b"/dev/null"
    body = difflib.diff_bytes(difflib.unified_diff, _lines(old), _lines(new), a, b)
    return b"".join(head) + b"".join(_ended(line) for line in body)


def count(before: Content | None, after: Content | None) -> tuple[int, int]:
    """Lines added and removed (0, 0 for binary files)."""
    old, new = _data(before), _data(after)
    if _binary(old) or _binary(new):
        return 0, 0
    added = removed = 0
    matcher = difflib.SequenceMatcher(None, _lines(old), _lines(new), autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            removed += i2 - i1
            added += j2 - j1
    return added, removed


def binary_patch(before: Content | None, after: Content | None) -> bytes:
    """A ``GIT binary patch`` (forward and reverse literals) with its full index line."""
    old, new = _data(before), _data(after)
    index = b"index %s..%s\n" % (_blob_id(before), _blob_id(after))
    return index + b"GIT binary patch\n" + _literal(new) + b"\n" + _literal(old) + b"\n"


def _literal(data: bytes) -> bytes:
    packed = zlib.compress(data)
    out = [b"literal %d\n" % len(data)]
    for start in range(0, len(packed), 52):
        chunk = packed[start : start + 52]
        size = len(chunk)
        mark = ord("A") + size - 1 if size <= 26 else ord("a") + size - 27
        out.append(bytes([mark]) + base64.b85encode(chunk, pad=True) + b"\n")
    return b"".join(out)


def _blob_id(content: Content | None) -> bytes:
    if content is None:
        return b"0" * 40
    data = content.data
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().encode()


def _data(content: Content | None) -> bytes:
    return content.data if content is not None else b""


def _binary(data: bytes) -> bool:
    return b"\0" in data[:8000]


def _lines(data: bytes) -> list[bytes]:
    return [line for line in re.split(rb"(?<=\n)", data) if line]


def _ended(line: bytes) -> bytes:
    return line if line.endswith(b"\n") else line + b"\n\\ No newline at end of file\n"
