"""A mission's history as git commits under ``refs/ocactors/<mission-id>``.

The user's HEAD, branch, index and stash are never touched: every commit is built in a private
index (``GIT_INDEX_FILE`` in the mission folder) with ``write-tree`` and ``commit-tree``, and
only the mission's own ref moves.  The chain is::

    user's HEAD  <-  baseline (the work tree as the mission found it)  <-  task  <-  task ...

The baseline carries the trailer ``Ocactors-Baseline``; each task commit carries
``Ocactors-Mission`` and ``Ocactors-Task``, so everything the commands need is read back from
the ref itself.  A killed git may leave a lock on the private index or on the mission's ref;
only this mission's process writes either, so such a lock is stale and removed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from ocactors.actors.gitrepo import GitError, Repo
from ocactors.actors.history_model import (
    SYMLINK,
    Content,
    FileChange,
    HistoryError,
    Kind,
    Step,
    TaskCommit,
    UndoReport,
    baseline_copy,
    format_stat,
    recorded_writes,
    restore,
)

KINDS: dict[str, Kind] = {"A": "created", "D": "deleted"}
TRAILER = re.compile(r"^(Ocactors-[A-Za-z]+): (.*)$")


class GitHistory:
    """The history of one mission in a git work tree."""

    kind = "git"
    reason: str | None = None

    def __init__(self, repo: Repo, mission_dir: Path, mission_id: str) -> None:
        self.repo = repo
        self.git = repo.git
        self.mission_dir = mission_dir
        self.mission_id = mission_id
        self.ref = f"refs/ocactors/{mission_id}"
        self.index = mission_dir / "history" / "index"
        self.root = repo.git.top / repo.prefix

    # -- the chain ------------------------------------------------------------------------

    def tip(self) -> str | None:
        """The newest commit of the mission, None before the baseline."""
        found = self.git.text("rev-parse", "--verify", "-q", f"{self.ref}^{{commit}}", check=False)
        return found or None

    def baseline(self) -> str | None:
        """The baseline commit (the work tree as the mission found it)."""
        if self.tip() is None:
            return None
        grep = "--grep=^Ocactors-Baseline: "
        return self.git.text("log", "--first-parent", "-1", "--format=%H", grep, self.ref) or None

    def begin(self) -> str:
        """Snapshot the work tree into the baseline commit; the existing one on a resume."""
        self._clear_locks()
        if self.tip() is not None:
            return self._need_baseline()
        tree = self._snapshot()
        head = self.git.text("rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
        message = trailers("ocactors: the work tree before the mission", Baseline=self.mission_id)
        commit = self._commit(tree, [head] if head else [], message)
        self.git("update-ref", "-m", "ocactors baseline", self.ref, commit, "")
        return commit

    def task_commits(self) -> list[TaskCommit]:
        """Every task commit after the baseline, oldest first."""
        span = f"{self._need_baseline()}..{self.ref}"
        raw = self.git("log", "--first-parent", "--reverse", "-z", "--format=%H%n%B", span)
        return list(_parse_commits(raw.decode(errors="replace")))

    def commit_task(self, task_id: str, title: str, files: Iterable[str]) -> str:
        """Commit exactly ``files`` as they are now on top of the mission's ref.

        If nothing differs from the tip and the task already has a commit (the process died
        after committing, before the log said so), that commit is returned: one per task.
        """
        self._clear_locks()
        self._need_baseline()
        tip = self.git.text("rev-parse", self.ref)
        tree = self._tree_with(tip, [self.repo.path(f) for f in files])
        if tree == self.git.text("rev-parse", f"{tip}^{{tree}}"):
            done = [c.commit for c in self.task_commits() if c.task_id == task_id]
            if done:
                return done[-1]
        message = trailers(_one_line(title, task_id), Mission=self.mission_id, Task=task_id)
        commit = self._commit(tree, [tip], message)
        self.git("update-ref", "-m", f"ocactors task {task_id}", self.ref, commit, tip)
        return commit

    # -- reading --------------------------------------------------------------------------

    def diff(self, task: str | None = None, stat: bool = False) -> str:
        """A unified diff ``git apply`` accepts (paths relative to the workspace), or a stat."""
        if stat:
            return format_stat(self.changes(task))
        options = ("--binary", "--no-renames", "--no-color", "--no-ext-diff", "--no-textconv")
        prefixes = ("--src-prefix=a/", "--dst-prefix=b/", *self._relative())
        out = b"".join(self.git("diff", *options, *prefixes, a, b) for a, b in self._spans(task))
        return out.decode(errors="surrogateescape")

    def changes(self, task: str | None = None) -> list[FileChange]:
        """Each changed file with its kind and +/- lines."""
        merged: dict[str, FileChange] = {}
        for a, b in self._spans(task):
            for change in self._span_changes(a, b):
                old = merged.get(change.path)
                if old is not None:
                    change = replace(
                        old, added=old.added + change.added, removed=old.removed + change.removed
                    )
                merged[change.path] = change
        return sorted(merged.values(), key=lambda c: c.path)

    def user_changed(self, files: Iterable[str]) -> list[str]:
        """Which of ``files`` differed from HEAD at the baseline (the user's own changes)."""
        base = self._need_baseline()
        parent = self.git.text("rev-parse", "--verify", "-q", f"{base}^", check=False)
        paths = [f":(top,literal){self.repo.path(f)}" for f in files]
        if not paths:
            return []
        old = parent or EMPTY_TREE.get(len(base), "")
        raw = self.git("diff", "--name-only", "-z", "--no-renames", old, base, "--", *paths)
        return sorted(self.repo.rel(p) for p in _fields(raw))

    # -- undo -----------------------------------------------------------------------------

    def undo(self, task: str | None = None, force: bool = False) -> UndoReport:
        """Put back the baseline content of what the mission (or ``task``) changed."""
        steps = self._task_steps(task) if task is not None else self._mission_steps()
        return restore(self.root, steps, force)

    def _mission_steps(self) -> list[Step]:
        base, tip = self._need_baseline(), self.git.text("rev-parse", self.ref)
        steps = [
            Step(rel, self._target(base, base, rel), self._content(tip, rel))
            for rel in self._changed(base, tip)
        ]
        seen = {s.path for s in steps}
        for rel in recorded_writes(self.mission_dir):  # written by an unfinished task
            if rel not in seen:
                steps.append(Step(rel, self._target(base, base, rel)))
        return steps

    def _task_steps(self, task: str) -> list[Step]:
        commits = self.task_commits()
        mine = [i for i, c in enumerate(commits) if c.task_id == task]
        if not mine:
            raise self._no_task(task, commits)
        base, last = self._need_baseline(), commits[mine[-1]].commit
        later = [(c.task_id, set(self.changed_by(c.commit))) for c in commits[mine[-1] + 1 :]]
        steps: dict[str, Step] = {}
        for i in mine:
            for rel in self.changed_by(commits[i].commit):
                if rel in steps:
                    continue
                target = self._target(f"{commits[i].commit}^", base, rel)
                who = next((f"task {t}" for t, paths in later if rel in paths), None)
                steps[rel] = Step(rel, target, self._content(last, rel), later=who)
        return list(steps.values())

    def _target(self, commit: str, base: str, rel: str) -> Content | None:
        """The content to go back to; an ignored file outside git comes from its copy."""
        content = self._content(commit, rel)
        if content is None and self._content(base, rel) is None:
            return baseline_copy(self.mission_dir, rel)
        return content

    def _content(self, commit: str, rel: str) -> Content | None:
        path = self.repo.path(rel)
        entry = self.git("ls-tree", "-z", commit, "--", path).split(b"\0")[0]
        if not entry:
            return None
        mode, kind, blob = entry.split(b"\t")[0].decode().split()
        if kind != "blob":
            raise GitError(f"{rel} is a {kind} in {commit[:12]}; ocactors leaves it alone")
        if int(mode, 8) == SYMLINK:
            return Content(self.git("cat-file", "blob", blob), SYMLINK)
        data = self.git("cat-file", "--filters", f"--path={path}", blob)
        return Content(data, int(mode, 8))

    def changed_by(self, commit: str) -> list[str]:
        """Workspace paths one commit changed."""
        return self._changed(f"{commit}^", commit)

    def _changed(self, a: str, b: str) -> list[str]:
        raw = self.git("diff", "--name-only", "-z", "--no-renames", *self._relative(), a, b)
        return sorted(_fields(raw))

    # -- plumbing -------------------------------------------------------------------------

    def _spans(self, task: str | None) -> list[tuple[str, str]]:
        if task is None:
            return [(self._need_baseline(), self.git.text("rev-parse", self.ref))]
        commits = self.task_commits()
        spans = [(f"{c.commit}^", c.commit) for c in commits if c.task_id == task]
        if not spans:
            raise self._no_task(task, commits)
        return spans

    def _span_changes(self, a: str, b: str) -> Iterator[FileChange]:
        relative = self._relative()
        status = _fields(self.git("diff", "--name-status", "-z", "--no-renames", *relative, a, b))
        kinds = {path: KINDS.get(code, "modified") for code, path in _pairs(status)}
        numstat = self.git("diff", "--numstat", "-z", "--no-renames", *relative, a, b)
        for line in _fields(numstat):
            added, removed, path = line.split("\t", 2)
            counts = (int(added), int(removed)) if added != "-" else (0, 0)
            yield FileChange(path, kinds.get(path, "modified"), *counts)

    def _relative(self) -> tuple[str, ...]:
        return (f"--relative={self.repo.prefix}",) if self.repo.prefix else ()

    def _need_baseline(self) -> str:
        base = self.baseline()
        if base is None:
            raise HistoryError(f"mission {self.mission_id} has no baseline in {self.ref}")
        return base

    def _no_task(self, task: str, commits: Sequence[TaskCommit]) -> HistoryError:
        known = ", ".join(dict.fromkeys(c.task_id for c in commits)) or "none yet"
        return HistoryError(f"mission {self.mission_id} has no commit for task {task!r} ({known})")

    def _snapshot(self) -> str:
        """The whole work tree, tracked and untracked-not-ignored, in the private index."""
        self.index.parent.mkdir(parents=True, exist_ok=True)
        user_index = self.repo.git_path("index")
        try:
            if user_index.is_file():
                shutil.copy2(user_index, self.index)  # its mtime too: racy-git checks
            self._add_all()
        except (GitError, OSError):
            self.index.unlink(missing_ok=True)  # e.g. a split index: start from nothing
            self._add_all()
        try:
            return self.git.text("write-tree", index=self.index)
        finally:
            self.index.unlink(missing_ok=True)

    def _add_all(self) -> None:
        self.git("add", "-A", "--", ":/", *self._not_missions(), index=self.index)

    def _not_missions(self) -> tuple[str, ...]:
        """A pathspec keeping the missions out, unless ignored already (git refuses it then)."""
        folder = f"{self.repo.prefix}.opencode/missions/"
        if self.git("check-ignore", "--no-index", folder, check=False):
            return ()
        return (f":(top,exclude){folder}",)

    def _tree_with(self, tip: str, paths: list[str]) -> str:
        """The tip's tree with ``paths`` as they are now (built in the private index)."""
        self.index.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.git("read-tree", tip, index=self.index)
            self._stage(paths)
            return self.git.text("write-tree", index=self.index)
        finally:
            self.index.unlink(missing_ok=True)  # rebuilt from the tip every time

    def _stage(self, paths: list[str]) -> None:
        """Exactly these paths, as they are now (deleted ones removed)."""
        folders = [p for p in paths if (self.git.top / p).is_dir() and not _link(self, p)]
        files = [p for p in paths if p not in folders]
        if files:
            listed = b"".join(os.fsencode(p) + b"\0" for p in files)
            args = ("update-index", "--add", "--remove", "--replace", "-z", "--stdin")
            self.git(*args, stdin=listed, index=self.index)
        if folders:
            specs = [f":(top,literal){p}" for p in folders]
            self.git("add", "-A", "--", *specs, *self._not_missions(), index=self.index)

    def _commit(self, tree: str, parents: list[str], message: str) -> str:
        links = [arg for parent in parents for arg in ("-p", parent)]
        args = ("commit-tree", "--no-gpg-sign", tree, *links, "-F", "-")
        return self.git(*args, stdin=message.encode()).decode().strip()

    def fork(self, new_mission_id: str, commit: str) -> None:
        """Start a forked mission's ref at ``commit`` (the commit matching the fork point)."""
        self.git("update-ref", "-m", "ocactors fork", f"refs/ocactors/{new_mission_id}", commit, "")

    def _clear_locks(self) -> None:
        """Locks a killed git left on what only this mission writes."""
        self.index.with_name("index.lock").unlink(missing_ok=True)
        self.repo.git_path(f"{self.ref}.lock").unlink(missing_ok=True)


EMPTY_TREE = {
    40: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    64: "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321",
}


def trailers(subject: str, **values: str) -> str:
    """A commit message: the subject, a blank line, ``Ocactors-<Key>: value`` lines."""
    lines = [f"Ocactors-{key}: {value}" for key, value in values.items()]
    return f"{subject}\n\n" + "\n".join(lines) + "\n"


def _one_line(title: str, task_id: str) -> str:
    flat = " ".join(title.split())
    return flat or f"task {task_id}"


def _parse_commits(raw: str) -> Iterator[TaskCommit]:
    for record in filter(None, raw.split("\0")):
        sha, _, body = record.strip("\n").partition("\n")
        last = body.strip().split("\n\n")[-1]
        found = {m[1]: m[2] for line in last.splitlines() if (m := TRAILER.match(line))}
        if "Ocactors-Task" in found:
            yield TaskCommit(found["Ocactors-Task"], sha, body.split("\n", 1)[0])


def _fields(raw: bytes) -> list[str]:
    return [os.fsdecode(f) for f in raw.split(b"\0") if f]


def _pairs(fields: list[str]) -> Iterator[tuple[str, str]]:
    return zip(fields[::2], fields[1::2], strict=True)


def _link(history: GitHistory, path: str) -> bool:
    return (history.git.top / path).is_symlink()
