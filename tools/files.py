"""Reading, writing, editing and listing files: the workspace's file tools.

Reads are line-numbered and ranged so a huge file is read in pieces; binary files are reported
as binary with their size, never dumped into the conversation.  Writes are atomic: the new text
goes to a temp file in the same folder, which is renamed over the target, so a crash never
leaves a torn file and a hard link to a file outside the workspace is replaced, never written
through; the target's mode bits (and owner, where allowed) are kept.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import msgspec

from ocactors.tools.errors import ToolError
from ocactors.tools.listing import walk_files
from ocactors.tools.spec import ToolContext, ToolSpec
from ocactors.tools.workspace import Workspace

MAX_LINES = 400
MAX_LINE_CHARS = 2000
MAX_LISTED = 500
NOTE_ROOM = 200


class ReadFile(msgspec.Struct, kw_only=True):
    """read_file arguments."""

    path: str
    start_line: int = 1
    max_lines: int = MAX_LINES


class WriteFile(msgspec.Struct, kw_only=True):
    """write_file arguments."""

    path: str
    content: str


class EditFile(msgspec.Struct, kw_only=True):
    """edit_file arguments."""

    path: str
    old: str
    new: str


class ListFiles(msgspec.Struct, kw_only=True):
    """list_files arguments."""

    path: str = "."
    pattern: str = "*"


def is_binary(path: Path) -> bool:
    """A NUL byte in the first 8 KiB, the usual test (git's too)."""
    with open(path, "rb") as handle:
        return b"\0" in handle.read(8192)


def check_text_file(path: Path, rel: str) -> None:
    """ToolError unless ``path`` is a regular text file (a FIFO would block a reader forever)."""
    if not path.exists():
        raise ToolError(f"{rel} does not exist")
    if path.is_dir():
        raise ToolError(f"{rel} is a directory; use list_files")
    if not path.is_file():
        raise ToolError(f"{rel} is not a regular file (a pipe, socket or device); not read")
    if is_binary(path):
        raise ToolError(f"{rel} is a binary file ({path.stat().st_size} bytes); not shown")


def iter_lines(path: Path) -> Iterator[str]:
    """The lines of a text file without their ends, streamed (a huge file is never held whole)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            yield line.rstrip("\n")


def read_text(path: Path, rel: str) -> str:
    """A text file's exact content (line ends kept), or ToolError if it is not valid UTF-8."""
    check_text_file(path, rel)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except UnicodeDecodeError:
        raise ToolError(f"{rel} is not valid UTF-8; editing it would damage it") from None


def read_file(ctx: ToolContext, args: ReadFile) -> str:
    """Lines ``start_line`` .. ``start_line + max_lines - 1``, numbered, within the size cap.

    Capped by lines and by characters (a file of long lines would otherwise fill a context
    window in one call); the note says which line to start from to read on.
    """
    path = ctx.workspace.resolve_read(args.path)
    check_text_file(path, args.path)
    start = max(args.start_line, 1)
    count = min(max(args.max_lines, 1), MAX_LINES)
    budget = ctx.shell.result_limit - NOTE_ROOM
    chunk, total = _read_range(path, start, count, budget)
    if total == 0:
        return f"{args.path} is empty"
    if not chunk:
        raise ToolError(f"start_line {start} is past the end of {args.path} ({total} lines)")
    end = start + len(chunk) - 1
    note = f"[{args.path}: lines {start}-{end} of {total}]"
    if end < total:
        note += f" (more: read_file with start_line={end + 1})"
    return "\n".join([*chunk, note])


def _read_range(path: Path, start: int, count: int, budget: int) -> tuple[list[str], int]:
    """Numbered lines from ``start``: at most ``count`` of them and ``budget`` characters (one
    line at least), and the number of lines in the file."""
    chunk: list[str] = []
    total = used = 0
    full = False
    for total, line in enumerate(iter_lines(path), start=1):
        if start <= total < start + count and not full:
            numbered = f"{total:>5}  {_clip(line)}"
            full = bool(chunk) and used + len(numbered) + 1 > budget
            if not full:
                chunk.append(numbered)
                used += len(numbered) + 1
    return chunk, total


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " [... line cut]"


def write_file(ctx: ToolContext, args: WriteFile) -> str:
    """Replace the whole file (creating folders)."""
    path = ctx.workspace.resolve_write(args.path)
    if path.is_dir():
        raise ToolError(f"{args.path} is a directory")
    if path.exists() and not path.is_file():
        raise ToolError(f"{args.path} is not a regular file (a pipe, socket or device)")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, args.content)
    return f"wrote {args.path} ({len(args.content.splitlines())} lines)"


def edit_file(ctx: ToolContext, args: EditFile) -> str:
    """Replace the one occurrence of ``old`` with ``new``; CRLF files stay CRLF."""
    path = ctx.workspace.resolve_write(args.path)
    raw = read_text(path, args.path)
    if not args.old:
        raise ToolError("old is empty; give the exact text to replace")
    crlf = "\r\n" in raw
    text, old, new = (_lf(raw), _lf(args.old), _lf(args.new)) if crlf else (raw, args.old, args.new)
    count = text.count(old)
    if count != 1:
        where = "does not occur" if count == 0 else f"occurs {count} times"
        raise ToolError(f"old {where} in {args.path}; it must occur exactly once")
    write_atomic(path, text.replace(old, new, 1), newline="\r\n" if crlf else "")
    return f"edited {args.path}"


def write_atomic(path: Path, text: str, newline: str | None = None) -> None:
    """Write ``text`` to a temp file beside ``path`` and rename it over ``path``.

    The rename replaces the directory entry, so a hard link to an outside file is cut rather
    than written through, and readers see the old or the new file, never half of one.
    """
    previous = _stat_or_none(path)
    fd, temp = _create_temp(path.parent, path.name, previous)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _create_temp(folder: Path, name: str, previous: os.stat_result | None) -> tuple[int, Path]:
    """An exclusive new file, with the mode and owner of ``previous`` (umask rules a new file)."""
    for _ in range(100):
        temp = folder / f".{name}.{secrets.token_hex(4)}.tmp"  # lease_guard.WRITE_TEMP knows it
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        if previous is not None:
            with contextlib.suppress(PermissionError):
                os.fchown(fd, previous.st_uid, previous.st_gid)  # before chmod: chown clears suid
            os.fchmod(fd, previous.st_mode & 0o7777)
        return fd, temp
    raise ToolError(f"could not create a temp file beside {name}")


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def list_files(ctx: ToolContext, args: ListFiles) -> str:
    """Files under ``path`` matching ``pattern`` (recursive), as git sees the repository."""
    root = ctx.workspace.resolve_read(args.path)
    if not root.is_dir():
        raise ToolError(f"{args.path} is not a directory")
    found = workspace_files(ctx.workspace, root, args.pattern)
    if not found:
        return f"no files match {args.pattern!r} under {args.path}{NOT_LISTED}"
    if len(found) <= MAX_LISTED:
        return "\n".join(found)
    more = (
        f"[... {len(found) - MAX_LISTED} more files: narrow it with a folder as path or a pattern]"
    )
    return "\n".join([*found[:MAX_LISTED], more])


NOT_LISTED = (
    " (what git ignores, virtualenvs, dependency and build folders are not listed; "
    "read_file still reads them)"
)


def workspace_files(workspace: Workspace, root: Path, pattern: str) -> list[str]:
    """Files under ``root`` matching ``pattern`` as the repository's developers see them.

    What git ignores (or ``.gitignore`` outside git), virtualenvs, dependency and build
    folders are left out (:mod:`ocactors.tools.listing`), and so are links that lead out.
    """
    out: list[str] = []
    under = workspace.relative(root)
    for rel in walk_files(workspace.root, under):
        name = rel.rsplit("/", 1)[-1]
        inner = rel if under == "." else rel[len(under) + 1 :]
        if glob_match(pattern, name, rel, inner) and _confined(workspace, rel):
            out.append(rel)
    return out


def _confined(workspace: Workspace, rel: str) -> bool:
    try:
        workspace.resolve_read(rel)
    except ToolError:
        return False
    return True


def glob_match(pattern: str, name: str, *paths: str) -> bool:
    """Whether the file's name or one of its paths matches, ``**/`` also matching no folder.

    Models write ``**/*.py`` and mean the top-level files too; paths are tried both from the
    workspace and from the listed folder, so ``list_files("src", "app/*.py")`` works.
    """
    patterns = {pattern, pattern.replace("**/", "")}
    return any(fnmatch.fnmatch(candidate, p) for p in patterns for candidate in (name, *paths))


READ_FILE = ToolSpec(
    "read_file",
    "Read a text file (numbered lines, in ranges).",
    ReadFile,
    read_file,
    "read_file the same path with a later start_line, or fewer max_lines",
)
WRITE_FILE = ToolSpec(
    "write_file", "Write a whole file (only files you own).", WriteFile, write_file
)
EDIT_FILE = ToolSpec(
    "edit_file",
    "Replace one exact snippet `old` with `new` in a file you own.",
    EditFile,
    edit_file,
)
LIST_FILES = ToolSpec(
    "list_files",
    "List files under a folder matching a glob pattern.",
    ListFiles,
    list_files,
    "give a folder as path, or a narrower pattern",
)
