"""Which files a repository has, as its developers see them: one skip-list, git's view, a map.

In a git work tree the files are what git lists: tracked files, plus untracked files that no
``.gitignore`` excludes (``git ls-files --cached --others --exclude-standard``).  Outside git,
the ``.gitignore`` files are honoured through ``pathspec``.  Untracked files are also kept out
of :data:`SKIP_DIRS` (a repository without a ``.gitignore`` for ``.tox/`` still has no reason
to show it), and three things never appear at all: ``.git/``, ``.opencode/`` (the mission log)
and virtualenvs (any folder holding a ``pyvenv.cfg``, whatever its name: ``env/`` too).

:func:`repo_map` is the planner's first view of a repository of any size: folders with their
file counts, source folders first, within a fixed character budget.
"""

from __future__ import annotations

import heapq
import os
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pathspec

PRIVATE = frozenset({".git", ".opencode"})
SKIP_DIRS = frozenset(
    {
        *PRIVATE,
        ".hg",
        ".svn",
        "node_modules",
        "bower_components",
        "__pycache__",
        "__pypackages__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".eggs",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".cache",
        "htmlcov",
        ".direnv",
        "build",
        "dist",
        "target",
        ".gradle",
        ".next",
        ".nuxt",
        ".terraform",
    }
)
"""Folders no developer reads: tool caches, installed dependencies, build outputs."""
SKIP_SUFFIXES = (".egg-info",)
GIT_TIMEOUT_S = 30.0


def skipped_dir(name: str) -> bool:
    """Whether a folder of this name is a cache, a dependency store or a build output."""
    return name in SKIP_DIRS or name.casefold() in PRIVATE or name.endswith(SKIP_SUFFIXES)


def is_virtualenv(folder: Path) -> bool:
    """A virtualenv, whatever its name: ``python -m venv``, virtualenv, uv all write pyvenv.cfg."""
    return (folder / "pyvenv.cfg").is_file()


def walk_files(root: Path, under: str = ".") -> list[str]:
    """The files below ``root / under`` as the repository's developers see them.

    Paths are POSIX, relative to ``root``, sorted as git sorts them.  Only files (a link to a
    file counts) are listed: a tracked file deleted from disk, a submodule or a FIFO is not.
    An ignored folder named as ``under`` is listed all the same (its own subfolders pruned).
    """
    root = Path(root)
    listed = _git_files(root, under)
    found = _walk_outside_git(root, under) if listed is None else listed
    if not found and under not in ("", ".") and (root / under).is_dir():
        found = _asked_by_name(root, under)
    return sorted(set(found))


def _asked_by_name(root: Path, under: str) -> list[str]:
    """A folder asked for by name is listed even if ignored (``node_modules/dep``, ``build``):
    the model wants to look inside it; the folders in it are still pruned.  Never ``.git``,
    ``.opencode`` or a virtualenv."""
    start = PurePosixPath(os.path.normpath(under)).as_posix()
    if _private(start + "/x") or _VenvCache(root).inside(start + "/x"):
        return []
    return list(_walk(root, start, _Ignores()))


def _git_files(root: Path, under: str) -> list[str] | None:
    """Git's view of ``under``, or None when ``root`` is not in a git work tree (or no git)."""
    tracked = _ls_files(root, under, "--cached")
    if tracked is None:
        return None
    untracked = _ls_files(root, under, "--others", "--exclude-standard") or []
    venvs = _VenvCache(root)
    keep = [p for p in tracked if not _private(p) and not venvs.inside(p)]
    keep += [p for p in untracked if not _skipped(p) and not venvs.inside(p)]
    return [p for p in keep if (root / p).is_file()]


def _ls_files(root: Path, under: str, *options: str) -> list[str] | None:
    command = ["git", "--literal-pathspecs", "ls-files", "-z", *options, "--", under]
    try:
        done = subprocess.run(
            command, cwd=root, capture_output=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return [p for p in os.fsdecode(done.stdout).split("\0") if p]


def _private(rel: str) -> bool:
    return any(part.casefold() in PRIVATE for part in PurePosixPath(rel).parts)


def _skipped(rel: str) -> bool:
    return any(skipped_dir(part) for part in PurePosixPath(rel).parts[:-1]) or _private(rel)


class _VenvCache:
    """Whether a path lies in a virtualenv, asking the disk once per folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.known: dict[str, bool] = {}

    def inside(self, rel: str) -> bool:
        parents = PurePosixPath(rel).parents
        return any(self._is_venv(str(p)) for p in parents if str(p) != ".")

    def _is_venv(self, folder: str) -> bool:
        if folder not in self.known:
            self.known[folder] = is_virtualenv(self.root / folder)
        return self.known[folder]


@dataclass
class _Ignores:
    """The ``.gitignore`` rules met so far, each with the folder it applies below."""

    rules: list[tuple[str, pathspec.GitIgnoreSpec]] = field(default_factory=list)

    def load(self, root: Path, folder: str) -> None:
        """Add ``folder/.gitignore`` (``folder`` relative to ``root``) if there is one."""
        try:
            lines = (root / folder / ".gitignore").read_text("utf-8", "replace").splitlines()
        except OSError:
            return
        self.rules.append((folder, pathspec.GitIgnoreSpec.from_lines(lines)))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """The deepest ``.gitignore`` with a rule for the path decides, as in git."""
        for base, spec in reversed(self.rules):
            if base != "." and not rel.startswith(base + "/"):
                continue
            inner = rel if base == "." else rel[len(base) + 1 :]
            verdict = spec.check_file(inner + ("/" if is_dir else "")).include
            if verdict is not None:
                return bool(verdict)
        return False

    def below(self, folder: str) -> _Ignores:
        """The rules that apply inside ``folder`` (a sibling's rules are dropped)."""
        keep = [(b, s) for b, s in self.rules if b == "." or _within(folder, b)]
        return _Ignores(keep)


def _within(rel: str, folder: str) -> bool:
    return rel == folder or rel.startswith(folder + "/")


def _walk_outside_git(root: Path, under: str) -> list[str]:
    """Every file below ``under``, pruning skipped, ignored and virtualenv folders."""
    start = PurePosixPath(os.path.normpath(under)).as_posix()
    ignores = _Ignores()
    for folder in ["."] + [str(p) for p in reversed(PurePosixPath(start).parents) if str(p) != "."]:
        ignores.load(root, folder)
    if start != ".":
        ignores.load(root, start)
    return list(_walk(root, start, ignores))


def _walk(root: Path, folder: str, ignores: _Ignores) -> Iterator[str]:
    try:
        entries = sorted(os.scandir(root / folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        rel = entry.name if folder == "." else f"{folder}/{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            if not _prune(root, rel, entry.name, ignores):
                inner = ignores.below(rel)
                inner.load(root, rel)
                yield from _walk(root, rel, inner)
        elif os.path.isfile(entry.path) and not ignores.ignored(rel, is_dir=False):
            yield rel


def _prune(root: Path, rel: str, name: str, ignores: _Ignores) -> bool:
    return skipped_dir(name) or ignores.ignored(rel, is_dir=True) or is_virtualenv(root / rel)


# --- the repository map ---------------------------------------------------------------------

CODE_SUFFIXES = frozenset(
    {
        *(".py", ".pyx", ".pyi", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".vue", ".svelte"),
        *(".go", ".rs", ".java", ".kt", ".kts", ".scala", ".cs", ".swift", ".dart", ".zig"),
        *(".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".m", ".mm", ".nim"),
        *(".rb", ".php", ".lua", ".pl", ".pm", ".r", ".jl", ".ex", ".exs", ".erl", ".hs"),
        *(".ml", ".clj", ".sh", ".sql"),
    }
)
MAP_BUDGET = 6000
TOP_FILES_SHARE = 4  # at most a quarter of the budget goes to the top-level file names


@dataclass
class _Folder:
    """One folder of the map: its own files and its subfolders, with counts below it."""

    path: str
    files: list[str] = field(default_factory=list)
    folders: dict[str, _Folder] = field(default_factory=dict)
    total: int = 0
    code: int = 0
    suffixes: dict[str, int] = field(default_factory=dict)

    def add(self, parts: tuple[str, ...]) -> None:
        suffix = PurePosixPath(parts[-1]).suffix.lower()
        self.total += 1
        self.code += suffix in CODE_SUFFIXES
        self.suffixes[suffix or parts[-1]] = self.suffixes.get(suffix or parts[-1], 0) + 1
        if len(parts) == 1:
            self.files.append(parts[0])
            return
        name = parts[0]
        child = self.folders.get(name)
        if child is None:
            child = self.folders[name] = _Folder(_join(self.path, name))
        child.add(parts[1:])

    def ranked(self) -> list[_Folder]:
        """Subfolders holding the most code first: the source before docs, data and assets."""
        return sorted(self.folders.values(), key=lambda f: (-f.code, -f.total, f.path))


def _join(folder: str, name: str) -> str:
    return name if not folder else f"{folder}/{name}"


def repo_map(root: Path, budget: int = MAP_BUDGET) -> str:
    """The planner's first view: every file if they fit ``budget``, else a map of folders.

    The map names the top-level files and then the folders, each with how many files it holds
    below it and its main file kinds; the folders with the most code come first and are
    opened further (their subfolders shown) while the budget lasts.
    """
    files = walk_files(root)
    if not files:
        return "(empty: no files yet)"
    plain = "\n".join(files)
    if len(plain) <= budget:
        return plain
    tree = _Folder("")
    for rel in files:
        tree.add(PurePosixPath(rel).parts)
    return _render_map(tree, budget)


def _render_map(tree: _Folder, budget: int) -> str:
    head = (
        f"{tree.total} files in {_count_folders(tree)} folders; counts include subfolders, "
        "folders with the most code first. Use list_files or grep on a folder to look inside."
    )
    files = _top_files_line(tree.files, budget // TOP_FILES_SHARE)
    room = budget - len(head) - len(files) - 2
    body = _MapBody(room)
    body.open(tree)
    return "\n".join([head, files, *body.render(tree)])


def _count_folders(tree: _Folder) -> int:
    return sum(1 + _count_folders(child) for child in tree.folders.values())


def _top_files_line(names: list[str], room: int) -> str:
    shown = _fit(sorted(names), room - 40)
    more = f" (+{len(names) - len(shown)} more)" if len(shown) < len(names) else ""
    return f"top-level files: {', '.join(shown) or '(none)'}{more}"


def _fit(items: Iterable[str], room: int) -> list[str]:
    """As many of ``items`` as fit in ``room`` characters joined by ", "."""
    out: list[str] = []
    used = 0
    for item in items:
        used += len(item) + 2
        if used > room:
            break
        out.append(item)
    return out


ELISION = 60  # room kept for a "... N more folders" line
FILES_LINE = 300  # at most this much for the names of one folder's files


class _MapBody:
    """Which folders are shown and opened: the ones with most code first, within a budget."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.opened: dict[str, list[_Folder]] = {}
        self.elided: dict[str, tuple[int, int]] = {}
        self.names: dict[str, str] = {}

    def open(self, tree: _Folder) -> None:
        """Open the root, then keep opening the shown folder with most code while room lasts;
        room left over names the files of the shown folders, those with most code first."""
        heap: list[tuple[int, int, str, _Folder]] = [(0, 0, "", tree)]
        shown: list[_Folder] = []
        while heap and self.room > ELISION:
            folder = heapq.heappop(heap)[3]
            for child in self._show(folder):
                shown.append(child)
                if child.folders:
                    heapq.heappush(heap, (-child.code, -child.total, child.path, child))
        for folder in sorted(shown, key=lambda f: (-f.code, -f.total, f.path)):
            self._name_files(folder)

    def _name_files(self, folder: _Folder) -> None:
        if not folder.files or self.room < FILES_LINE // 2:
            return
        indent = "  " * len(PurePosixPath(folder.path).parts)
        names = _fit(sorted(folder.files), min(self.room, FILES_LINE) - len(indent) - 30)
        more = (
            f" (+{len(folder.files) - len(names)} more)" if len(names) < len(folder.files) else ""
        )
        if names:
            self.names[folder.path] = f"{indent}{', '.join(names)}{more}"
            self.room -= len(self.names[folder.path]) + 1

    def _show(self, folder: _Folder) -> list[_Folder]:
        """As many subfolders as fit (keeping room to count the rest)."""
        ranked = folder.ranked()
        shown: list[_Folder] = []
        for child in ranked:
            cost = len(_line(child)) + 1
            if cost + ELISION > self.room:
                break
            self.room -= cost
            shown.append(child)
        hidden = ranked[len(shown) :]
        if hidden:
            self.room -= ELISION
            self.elided[folder.path] = (len(hidden), sum(f.total for f in hidden))
        self.opened[folder.path] = shown
        return shown

    def render(self, folder: _Folder) -> Iterator[str]:
        """The shown folders in tree order, each under its parent."""
        for child in self.opened.get(folder.path, []):
            yield _line(child)
            if child.path in self.names:
                yield self.names[child.path]
            yield from self.render(child)
        if folder.path in self.elided:
            count, total = self.elided[folder.path]
            indent = "  " * (len(PurePosixPath(folder.path).parts))
            yield f"{indent}... {count} more folders ({total} files)"


def _line(folder: _Folder) -> str:
    kinds = sorted(folder.suffixes.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    what = ", ".join(f"{name} {count}" for name, count in kinds)
    path = PurePosixPath(folder.path)
    count = f"{folder.total} file{'s' if folder.total != 1 else ''}"
    return f"{'  ' * (len(path.parts) - 1)}{path.name}/  {count} ({what})"
