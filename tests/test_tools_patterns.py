"""The patterns models write: globs for list_files, regular expressions for grep."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from ocactors.tools import Toolbox, ToolContext, WebConfig, Workspace, planner_tools
from ocactors.tools.search import grep_tool


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    for rel in ("top.py", "README.md", "src/app/main.py", "src/app/util.py", "src/lib.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"# {rel}\n")
    return root


def listed(root: Path, path: str, pattern: str) -> list[str]:
    toolbox = Toolbox(planner_tools(WebConfig()), ToolContext(Workspace(root)))
    result = toolbox.call("list_files", json.dumps({"path": path, "pattern": pattern}))
    assert not result.is_error, result.output
    return [line for line in result.output.splitlines() if not line.startswith("no files")]


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        (".", "**/*.py", ["src/app/main.py", "src/app/util.py", "src/lib.py", "top.py"]),
        (".", "*.md", ["README.md"]),
        (".", "src/**/*.py", ["src/app/main.py", "src/app/util.py", "src/lib.py"]),
        ("src", "**/*.py", ["src/app/main.py", "src/app/util.py", "src/lib.py"]),
        ("src", "app/*.py", ["src/app/main.py", "src/app/util.py"]),
        ("src", "src/app/m*.py", ["src/app/main.py"]),
        ("src", "*.md", []),
    ],
)
def test_list_files_globs_as_models_write_them(
    tree: Path, path: str, pattern: str, expected: list[str]
) -> None:
    assert sorted(listed(tree, path, pattern)) == expected


def grep(root: Path, pattern: str, path: str = ".", timeout_s: float = 5.0) -> tuple[str, bool]:
    toolbox = Toolbox([grep_tool(timeout_s)], ToolContext(Workspace(root)))
    result = toolbox.call("grep", json.dumps({"pattern": pattern, "path": path}))
    return result.output, result.is_error


def test_a_pattern_that_backtracks_without_end_is_given_up_on_while_the_process_runs_on(
    tree: Path,
) -> None:
    (tree / "long.txt").write_text("a" * 40 + "!\n")
    ticks = 0
    done = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not done.wait(0.01):
            ticks += 1

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    started = time.monotonic()
    output, is_error = grep(tree, "(a+)+$", "long.txt", timeout_s=0.5)
    elapsed = time.monotonic() - started
    done.set()
    ticker.join(timeout=5)
    assert is_error and "gave up after 0.5s" in output and "(a+)+" in output
    assert elapsed < 3
    assert ticks >= 10  # the other threads were not frozen meanwhile


def test_grep_numbers_lines_as_read_file_does_whatever_is_in_them(tree: Path) -> None:
    (tree / "odd.txt").write_bytes(b"one\x0ctwo\r\nthree\rfour \xff\nneedle\n")
    output, is_error = grep(tree, "needle|two|four", "odd.txt")
    assert not is_error
    assert output.split("\n") == [
        "odd.txt:1: one\x0ctwo",
        "odd.txt:3: four \ufffd",
        "odd.txt:4: needle",
    ]


def test_grep_finds_files_with_names_that_are_not_utf8(tree: Path) -> None:
    (tree / os.fsdecode(b"caf\xe9.txt")).write_text("needle\n")
    output, is_error = grep(tree, "needle")
    assert not is_error
    assert output == "caf\\udce9.txt:1: needle"


def test_grep_cuts_long_lines_and_keeps_unicode(tree: Path) -> None:
    (tree / "wide.txt").write_text("é" * 1000 + "\n", encoding="utf-8")
    output, _ = grep(tree, "é", "wide.txt")
    assert output == "wide.txt:1: " + "é" * 300


def test_a_grep_costs_little(tree: Path) -> None:
    started = time.monotonic()
    for _ in range(5):
        assert grep(tree, "src")[0].count("\n") == 2
    assert (time.monotonic() - started) / 5 < 0.5
