"""grep: a regular expression over the workspace's text files.

The files are chosen here (confined, regular, text, not too big); the matching runs in a child
interpreter with a deadline.  Python's ``re`` cannot be interrupted and keeps the GIL while it
matches, so a pattern that backtracks catastrophically (``(a+)+$`` on a long line) matched in
process would freeze every actor of the mission for good; a child is simply killed.  It costs
about 30 ms a call (``-I -S``: the child imports nothing but json, re and sys).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import msgspec

from ocactors.tools.errors import ToolError
from ocactors.tools.files import is_binary, workspace_files
from ocactors.tools.spec import ToolContext, ToolSpec

MAX_MATCHES = 200
MAX_FILE_BYTES = 2_000_000
LINE_CHARS = 300
GREP_TIMEOUT_S = 10.0

# Lines are numbered as read_file numbers them (universal newlines, split on "\n" only).
_MATCHER = r"""
import json, re, sys
job = json.loads(sys.stdin.buffer.read())
regex, left = re.compile(job["pattern"]), job["limit"]
sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")
for rel, path in job["files"]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                line = line.rstrip("\n")
                if regex.search(line):
                    sys.stdout.write(f"{rel}:{number}: {line[:job['width']]}\n")
                    left -= 1
                    if not left:
                        sys.exit(0)
    except OSError:
        pass
"""


class Grep(msgspec.Struct, kw_only=True):
    """grep arguments."""

    pattern: str
    path: str = "."


def grep(ctx: ToolContext, args: Grep, *, timeout_s: float = GREP_TIMEOUT_S) -> str:
    """``file:line: text`` for each matching line, capped; the matching bounded in time."""
    try:
        re.compile(args.pattern)
    except re.error as error:
        raise ToolError(f"invalid regular expression {args.pattern!r}: {error}") from None
    matches = match_in_child(args.pattern, _searchable_files(ctx, args.path), timeout_s)
    if len(matches) >= MAX_MATCHES:
        return "\n".join(matches) + f"\n[stopped at {MAX_MATCHES} matches]"
    return "\n".join(matches) or f"no match for {args.pattern!r}"


def _searchable_files(ctx: ToolContext, rel: str) -> list[tuple[str, str]]:
    """(relative, real path) of each regular text file under ``rel`` that grep reads."""
    root = ctx.workspace.resolve_read(rel)
    rels = (
        [ctx.workspace.relative(root)]
        if root.is_file()
        else workspace_files(ctx.workspace, root, "*")
    )
    real = ((name, ctx.workspace.resolve_read(name)) for name in rels)
    return [(name, str(path)) for name, path in real if _searchable(path)]


def _searchable(path: Path) -> bool:
    """A regular text file of a sane size (a pipe would block, a dangling link is nothing)."""
    try:
        return path.is_file() and path.stat().st_size <= MAX_FILE_BYTES and not is_binary(path)
    except OSError:
        return False


def match_in_child(pattern: str, files: list[tuple[str, str]], timeout_s: float) -> list[str]:
    """The matching lines, found by a child interpreter killed after ``timeout_s``."""
    job = {"pattern": pattern, "files": files, "limit": MAX_MATCHES, "width": LINE_CHARS}
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _MATCHER],
            input=json.dumps(job).encode("ascii"),
            capture_output=True,
            timeout=timeout_s,
            env={},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolError(
            f"grep gave up after {timeout_s:g}s: the pattern may backtrack without end (nested "
            "repeats such as (a+)+ or (.*)*), or the folder is huge; simplify it or narrow path"
        ) from None
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise ToolError(f"grep failed: {''.join(reason) or f'exit {done.returncode}'}")
    return done.stdout.decode("utf-8", "replace").split("\n")[:-1]


def grep_tool(timeout_s: float = GREP_TIMEOUT_S) -> ToolSpec:
    """The grep tool with its matching bounded by ``timeout_s`` (tests use a short one)."""
    return ToolSpec(
        "grep",
        "Search text files for a regular expression (Python syntax); `file:line: text`.",
        Grep,
        partial(grep, timeout_s=timeout_s),
        "give a narrower pattern, or a folder or file as path",
    )


GREP = grep_tool()
