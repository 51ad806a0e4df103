"""Which tools each role gets: read-only for planning, writes and commands for building."""

from __future__ import annotations

from ocactors.tools.files import EDIT_FILE, LIST_FILES, READ_FILE, WRITE_FILE
from ocactors.tools.search import GREP
from ocactors.tools.shell import RUN_COMMAND
from ocactors.tools.spec import ToolSpec, WebConfig
from ocactors.tools.web import WEB_FETCH, WEB_SEARCH


def _web(web: WebConfig) -> list[ToolSpec]:
    return [*([WEB_FETCH] if web.fetch else []), *([WEB_SEARCH] if web.search_url else [])]


def planner_tools(web: WebConfig) -> list[ToolSpec]:
    """read_file, list_files, grep, and the web tools when configured."""
    return [READ_FILE, LIST_FILES, GREP, *_web(web)]


def worker_tools(web: WebConfig) -> list[ToolSpec]:
    """The reading tools plus write_file, edit_file and run_command."""
    return [READ_FILE, WRITE_FILE, EDIT_FILE, LIST_FILES, GREP, RUN_COMMAND, *_web(web)]


def reviewer_tools(web: WebConfig) -> list[ToolSpec]:
    """The reading tools plus run_command (no writes)."""
    return [READ_FILE, LIST_FILES, GREP, RUN_COMMAND, *_web(web)]
