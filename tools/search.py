"""grep: a regular expression over the workspace's text files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import msgspec

from ocactors.tools.errors import ToolError
from ocactors.tools.files import is_binary, iter_lines, walk_files
from ocactors.tools.spec import ToolContext, ToolSpec

MAX_MATCHES = 200
MAX_FILE_BYTES = 2_000_000


class Grep(msgspec.Struct, kw_only=True):
    """grep arguments."""

    pattern: str
    path: str = "."


def grep(ctx: ToolContext, args: Grep) -> str:
    """``file:line: text`` for each matching line, capped."""
    try:
        regex = re.compile(args.pattern)
    except re.error as error:
        raise ToolError(f"invalid regular expression {args.pattern!r}: {error}") from None
    root = ctx.workspace.resolve_read(args.path)
    files = (
        [ctx.workspace.relative(root)] if root.is_file() else walk_files(root, ctx.workspace, "*")
    )
    matches: list[str] = []
    for rel in files:
        for number, line in _searchable_lines(ctx.workspace.resolve_read(rel)):
            if regex.search(line):
                matches.append(f"{rel}:{number}: {line[:300]}")
                if len(matches) >= MAX_MATCHES:
                    return "\n".join(matches) + f"\n[stopped at {MAX_MATCHES} matches]"
    return "\n".join(matches) or f"no match for {args.pattern!r}"


def _searchable_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of a regular text file; nothing for a pipe, a binary or unreadable file."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES or is_binary(path):
            return
        yield from enumerate(iter_lines(path), start=1)
    except OSError:
        return


GREP = ToolSpec("grep", "Search text files for a regular expression.", Grep, grep)
