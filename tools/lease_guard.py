"""Leases hold for commands too: what a command changes outside its lease is put back.

Why restore rather than prevent: neither sandbox can say "only these files" cheaply.  bwrap
binds whole trees (a file bound writable cannot be replaced by rename, a file not yet created
cannot be bound at all), and Landlock only ever allows, per tree, so a writable folder lets a
command create anything in it.  Builds and tests also legitimately write outside any lease
(caches, build outputs).  So the sandbox prevents what must never happen (``.git``,
``.opencode``, the machine, files other running tasks hold: see ``Snapshot.protect``) and this
guard undoes the rest after each command:

- **before** a command, one stat walk of the workspace (the skip-list's folders, caches and
  virtualenvs, are not entered);
- a **shadow copy** of every file outside the lease is kept in ``store`` (reflinked where the file
  system can).  It is refreshed only for files whose stat changed since it was taken, so the
  first command pays a copy of the workspace and the next ones only what changed since.
  Identity is size, mtime, ctime, inode and mode: ctime cannot be set from user space, so a file
  rewritten and given its old mtime back is still seen;
- **after** the command, a second walk: files created outside the lease are removed, files
  modified or deleted are put back from the shadow (atomically, mode and mtime too), and the
  :class:`LeaseReport` says what happened, with the text for the model.

Several commands may run at once (parallel workers): what other owners hold (:meth:`hold`),
including leases granted while this command ran, is theirs to change and is left alone; the
sandbox keeps those files read-only for this command.  Files larger than ``max_file_bytes`` are
not copied but listed in ``Snapshot.protect`` so the sandbox keeps them read-only instead.  Not
guarded: the skip-list's folders (a new ``.git``/``.opencode`` outside the lease is removed),
and a change made by someone other than a command while it runs (a person editing the files)
is taken for the command's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ocactors.tools.listing import SKIP_DIRS, skipped_dir

SKIP_NAMES = SKIP_DIRS  # the one skip-list (tools/listing.py)
PRIVATE_NAMES = frozenset({".git", ".opencode"})
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_LISTED = 20
FICLONE = 0x40049409
WRITE_TEMP = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp")
"""write_file's temp file beside its target (files.write_atomic): part of that target's write."""


@dataclass(frozen=True, slots=True)
class Entry:
    """What a stat says about one path; two entries differ when its content may differ."""

    kind: str  # "f" file, "d" folder, "l" symlink, "s" skipped folder, "o" other
    mode: int
    size: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    ino: int = 0
    link: str = ""

    def same(self, other: Entry) -> bool:
        """Folders compare by kind and mode only: their times change with their entries."""
        if self.kind in "ds" or other.kind in "ds":
            return (self.kind, self.mode) == (other.kind, other.mode)
        return self == other


Tree = dict[str, Entry]


@dataclass(frozen=True)
class Change:
    """One path changed outside the lease, and what the guard did about it."""

    path: str
    kind: str  # created, modified, deleted
    outcome: str  # removed, restored, or why it could not be


@dataclass(frozen=True)
class LeaseReport:
    """What one command changed outside its lease, and the text for the model."""

    changes: tuple[Change, ...]
    lease: tuple[str, ...]

    @property
    def violated(self) -> bool:
        """Whether the command changed anything outside its lease."""
        return bool(self.changes)

    @property
    def paths(self) -> tuple[str, ...]:
        """The paths, for a ``lease.violated`` event."""
        return tuple(change.path for change in self.changes)

    @property
    def message(self) -> str:
        """The note appended to the tool result ("" when nothing was touched)."""
        if not self.changes:
            return ""
        shown = [f"{c.path} ({c.kind}, {c.outcome})" for c in self.changes[:MAX_LISTED]]
        more = len(self.changes) - MAX_LISTED
        listed = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
        allowed = ", ".join(self.lease) if self.lease else "none (this role only reads)"
        return (
            f"lease: this command changed files outside your lease, which were put back as "
            f"they were before it: {listed}. Files you may change: {allowed}."
        )


@dataclass
class Snapshot:
    """The workspace before one command; pass it to :meth:`LeaseGuard.after`."""

    owner: str
    lease: frozenset[str]
    tree: Tree
    blobs: dict[str, str]
    protect: tuple[str, ...]
    """Paths the sandbox should keep read-only: held by others, or too large to copy."""
    mark: int
    others: frozenset[str]
    done: bool = field(default=False, repr=False)


class LeaseGuard:
    """One per workspace, shared by every command run in it (thread-safe)."""

    def __init__(
        self,
        root: Path,
        store: Path,
        *,
        skip: Iterable[str] = SKIP_NAMES,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.root = Path(root).resolve()
        self.skip = frozenset(skip) | PRIVATE_NAMES
        self.max_file_bytes = max_file_bytes
        self._shadow = _Shadow(self._check_store(Path(store)))
        self._lock = threading.Lock()
        self._held: dict[str, frozenset[str]] = {}
        self._grants: list[tuple[int, str, frozenset[str]]] = []
        self._running: dict[int, tuple[str, frozenset[str], int]] = {}
        self._generation = 0

    def _check_store(self, store: Path) -> Path:
        """The store must not be walked itself: outside the workspace or under a skipped name."""
        real = store.resolve()
        if self.root in real.parents and not set(real.relative_to(self.root).parts) & self.skip:
            raise ValueError(f"the lease guard's store {store} must be under a skipped folder")
        return real

    def hold(self, owner: str, paths: Iterable[str]) -> None:
        """``owner`` may change ``paths`` (its lease) until :meth:`release`; others leave them.

        Call it when a lease is granted: a worker's write_file between its commands is then
        not taken for another command's doing.  A command's own lease is held while it runs.
        """
        held = frozenset(_clean(p) for p in paths)
        with self._lock:
            self._held[owner] = held
            self._grant(owner, held)

    def _grant(self, owner: str, paths: frozenset[str]) -> None:
        self._generation += 1
        self._grants.append((self._generation, owner, paths))

    def release(self, owner: str) -> None:
        """``owner``'s lease ended."""
        with self._lock:
            self._held.pop(owner, None)

    def before(self, lease: Iterable[str], *, owner: str = "") -> Snapshot:
        """The workspace now, and a shadow copy of every file outside ``lease``."""
        mine = frozenset(_clean(p) for p in lease)
        with self._lock:  # counted as running from before the scan: what others are granted
            begun = self._generation  # while it scans is theirs, and is not pruned meanwhile
            reservation = object()
            self._running[id(reservation)] = (owner, mine, begun)
        try:
            tree = scan(self.root, self.skip)
        except BaseException:
            with self._lock:
                self._running.pop(id(reservation), None)
            raise
        with self._lock:
            self._running.pop(id(reservation), None)  # the snapshot takes its place below
            others = self._others(owner, begun)
            keep = {rel: e for rel, e in tree.items() if rel not in mine | others}
            blobs = self._shadow.take(self.root, keep, self.max_file_bytes)
            large = [rel for rel, e in keep.items() if e.kind == "f" and rel not in blobs]
            protect = tuple(sorted({*(p for p in others if p in tree), *large}))
            self._grant(owner, mine)
            snapshot = Snapshot(owner, mine, tree, blobs, protect, self._generation, others)
            self._running[id(snapshot)] = (owner, mine, snapshot.mark)
            return snapshot

    def after(self, snapshot: Snapshot) -> LeaseReport:
        """Put back what the command changed outside its lease; say what that was."""
        if snapshot.done:
            raise ValueError("this snapshot was already checked")
        snapshot.done = True
        try:
            tree = scan(self.root, self.skip)
            with self._lock:
                others = snapshot.others | self._others(snapshot.owner, snapshot.mark)
                held = snapshot.lease | others
                changes = _Restorer(self.root, snapshot, tree, held, self._shadow).run()
                self._shadow.drop(snapshot.blobs.values())
        finally:
            with self._lock:  # whatever happened, this command no longer runs
                self._running.pop(id(snapshot), None)
                self._prune()
        return LeaseReport(tuple(changes), tuple(sorted(snapshot.lease)))

    def _others(self, owner: str, mark: int) -> frozenset[str]:
        """What owners other than ``owner`` hold now (commands running included) or were
        granted since ``mark``."""
        held = [paths for who, paths in self._held.items() if who != owner]
        held += [paths for who, paths, _ in self._running.values() if who != owner]
        held += [paths for gen, who, paths in self._grants if gen > mark and who != owner]
        return frozenset().union(*held)

    def _prune(self) -> None:
        """Grants older than every running command's start are never asked about again."""
        oldest = min((mark for _, _, mark in self._running.values()), default=self._generation)
        self._grants = [grant for grant in self._grants if grant[0] > oldest]


def scan(root: Path, skip: frozenset[str]) -> Tree:
    """Every path under ``root`` with its stat; skipped folders are recorded, not entered.

    A folder holding ``pyvenv.cfg`` is a virtualenv, skipped whatever its name.
    """
    tree: Tree = {}
    todo = [""]
    while todo:
        rel = todo.pop()
        try:
            entries = list(os.scandir(root / rel if rel else root))
        except OSError:
            continue
        if rel and any(entry.name == "pyvenv.cfg" for entry in entries):
            tree[rel] = Entry("s", tree[rel].mode)
            continue
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            try:
                tree[path] = _entry(entry, entry.name in skip or skipped_dir(entry.name))
            except FileNotFoundError:
                continue  # gone between the listing and the stat (a temp file renamed away)
            if tree[path].kind == "d":
                todo.append(path)
    return tree


def _entry(entry: os.DirEntry[str], skipped: bool) -> Entry:
    info = entry.stat(follow_symlinks=False)
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return Entry("s" if skipped else "d", stat.S_IMODE(mode))
    kind = "f" if stat.S_ISREG(mode) else "l" if stat.S_ISLNK(mode) else "o"
    link = os.readlink(entry.path) if kind == "l" else ""
    return Entry(
        kind,
        stat.S_IMODE(mode),
        info.st_size,
        info.st_mtime_ns,
        info.st_ctime_ns,
        info.st_ino,
        link,
    )


class _Shadow:
    """Copies of files as they were, shared by snapshots and counted, so none is copied twice."""

    def __init__(self, store: Path) -> None:
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir(parents=True)
        self.store = store
        self.latest: dict[str, tuple[Entry, str]] = {}
        self.refs: Counter[str] = Counter()
        self.count = 0
        self.reflink = True

    def take(self, root: Path, tree: Tree, max_bytes: int) -> dict[str, str]:
        """A blob for each regular file in ``tree`` no larger than ``max_bytes``."""
        blobs: dict[str, str] = {}
        for rel, entry in tree.items():
            if entry.kind != "f" or entry.size > max_bytes:
                continue
            blob = self._current(root, rel, entry)
            if blob is not None:
                blobs[rel] = blob
                self.refs[blob] += 1
        return blobs

    def _current(self, root: Path, rel: str, entry: Entry) -> str | None:
        known = self.latest.get(rel)
        if known is not None and known[0] == entry:
            return known[1]
        self.count += 1
        blob = str(self.count)
        if not self._copy(root / rel, self.store / blob):
            return None
        self.remember(rel, entry, blob)
        return blob

    def remember(self, rel: str, entry: Entry, blob: str) -> None:
        """``blob`` holds ``rel``'s content while its stat is ``entry``."""
        old = self.latest.get(rel)
        self.latest[rel] = (entry, blob)
        self.refs[blob] += 1
        if old is not None:
            self.drop([old[1]])

    def drop(self, blobs: Iterable[str]) -> None:
        """One reference fewer to each; a blob nobody refers to is deleted."""
        for blob in blobs:
            self.refs[blob] -= 1
            if self.refs[blob] <= 0:
                del self.refs[blob]
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.store / blob)

    def _copy(self, source: Path, target: Path) -> bool:
        """Reflink where the file system can, else an in-kernel copy; False if unreadable."""
        try:
            with open(source, "rb") as src, open(target, "wb") as dst:
                if self.reflink:
                    try:
                        fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
                        return True
                    except OSError:
                        self.reflink = False
                shutil.copyfileobj(src, dst)
            return True
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(target)
            return False


class _Restorer:
    """Puts the workspace back where a command changed it outside ``excluded``."""

    def __init__(
        self, root: Path, snapshot: Snapshot, after: Tree, excluded: frozenset[str], shadow: _Shadow
    ) -> None:
        self.root, self.snapshot, self.after = root, snapshot, after
        self.excluded, self.shadow = excluded, shadow
        self.changes: list[Change] = []

    def run(self) -> list[Change]:
        """Created paths removed, then modified and deleted ones put back, shallowest first."""
        before = self.snapshot.tree
        created = [rel for rel in self.after if rel not in before]
        changed = [
            rel for rel in before if rel not in self.after or not before[rel].same(self.after[rel])
        ]
        gone: set[str] = set()
        for rel in sorted(created, key=_depth):
            if not self._mine(rel) and not _under(rel, gone):
                self._remove_created(rel, gone)
        for rel in sorted(changed, key=_depth):
            if not self._mine(rel):
                self._put_back(rel)
        return sorted(self.changes, key=lambda c: c.path)

    def _mine(self, rel: str) -> bool:
        """In the lease or someone else's, or write_file's temp file for such a path."""
        if rel in self.excluded:
            return True
        folder, _, name = rel.rpartition("/")
        temp = WRITE_TEMP.fullmatch(name)
        target = temp and (f"{folder}/{temp['name']}" if folder else temp["name"])
        return bool(target) and target in self.excluded

    def _remove_created(self, rel: str, gone: set[str]) -> None:
        entry = self.after[rel]
        if entry.kind == "s" and rel.rsplit("/", 1)[-1] not in PRIVATE_NAMES:
            return  # a new cache folder: left alone
        if entry.kind in "ds" and any(_under(p, {rel}) for p in self.excluded):
            return  # holds a file of the lease: its other new entries are removed one by one
        _delete(self.root / rel)
        gone.add(rel)
        self.changes.append(Change(rel, "created", "removed"))

    def _put_back(self, rel: str) -> None:
        old = self.snapshot.tree[rel]
        kind = "deleted" if rel not in self.after else "modified"
        if old.kind == "s":
            return  # a skipped folder (cache, virtualenv): not guarded
        try:
            outcome = self._restore(rel, old)
        except OSError as error:
            outcome = f"could not be put back: {error.strerror or error}"
        self.changes.append(Change(rel, kind, outcome))

    def _restore(self, rel: str, old: Entry) -> str:
        path = self.root / rel
        now = self.after.get(rel)
        if old.kind == "d":
            if now is not None and now.kind != "d":
                _delete(path)
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, old.mode)
            return "restored"
        blob = self.snapshot.blobs.get(rel)
        if old.kind == "f" and blob is None:
            return "could not be put back: no copy was kept (too large or unreadable)"
        if old.kind not in "fl":
            return "could not be put back: not a regular file"
        if now is not None and now.kind in "ds":
            _delete(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write_back(rel, old, blob)
        return "restored"

    def _write_back(self, rel: str, old: Entry, blob: str | None) -> None:
        """A temp file (or link) beside the target, renamed over it."""
        path = self.root / rel
        temp = path.with_name(f".{path.name}.ocactors-restore")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        if old.kind == "l":
            os.symlink(old.link, temp)
            os.replace(temp, path)
            return
        assert blob is not None
        shutil.copyfile(self.shadow.store / blob, temp)
        os.chmod(temp, old.mode)
        os.utime(temp, ns=(old.mtime_ns, old.mtime_ns))
        os.replace(temp, path)
        info = os.lstat(path)
        fresh = Entry("f", old.mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
        self.shadow.remember(rel, fresh, blob)


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _depth(rel: str) -> int:
    return rel.count("/")


def _under(rel: str, folders: Iterable[str]) -> bool:
    """Whether ``rel`` lies strictly inside one of ``folders``."""
    return any(rel.startswith(folder + "/") for folder in folders)


def _clean(rel: str) -> str:
    return Path(os.path.normpath(rel.replace("\\", "/"))).as_posix()
