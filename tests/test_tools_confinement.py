"""Confinement: the file tools read only inside the workspace, write only the lease, and never
touch ``.opencode/`` or ``.git/``; nothing outside the workspace is ever read, created or changed.

Every sensitive file in the fixture contains the word ``secret``; nothing a tool may read does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ocactors.tools import Toolbox, ToolContext, WebConfig, Workspace, worker_tools


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    _write(ws / "src" / "app.py", "print('hi')\n")
    _write(ws / ".opencode" / "events.jsonl", "secret log\n")
    _write(ws / ".git" / "config", "secret git\n")
    _write(ws / "sub" / ".git" / "HEAD", "secret nested repository\n")
    _write(tmp_path / "outside.txt", "secret outside\n")
    _write(tmp_path / "outdir" / "inner.txt", "secret inner\n")
    links = {
        "link_out": tmp_path / "outside.txt",
        "rel_out": Path("../outside.txt"),
        "dir_out": tmp_path / "outdir",
        "link_in": ws / "src" / "app.py",
        "dir_in": Path("src"),
        "link_log": ws / ".opencode",
        "link_git": ws / ".git" / "config",
        "loop": Path("loop"),
    }
    for name, target in links.items():
        (ws / name).symlink_to(target)
    return ws


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def box(root: Path, writable: list[str] | None = None, seen: list[str] | None = None) -> Toolbox:
    hook = None if seen is None else seen.append
    workspace = Workspace(root, writable=writable, on_before_write=hook)
    return Toolbox(worker_tools(WebConfig()), ToolContext(workspace=workspace))


def call(toolbox: Toolbox, name: str, **args: Any) -> tuple[str, bool]:
    result = toolbox.call(name, json.dumps(args))
    return result.output, result.is_error


def snapshot(top: Path) -> dict[str, object]:
    """Every path under ``top`` with its bytes (or link target, or "dir"), links not followed."""
    state: dict[str, object] = {}
    for current, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(current) / name
            key = path.relative_to(top).as_posix()
            if path.is_symlink():
                state[key] = ("link", os.readlink(path))
            else:
                state[key] = path.read_bytes() if path.is_file() else "dir"
    return state


ESCAPES = [
    "..",
    "../outside.txt",
    "src/../../outside.txt",
    "a/../../outside.txt",
    "dir_in/../../outside.txt",
    "/etc/passwd",
    "~",
    "~/outside.txt",
    "link_out",
    "rel_out",
    "dir_out",
    "dir_out/inner.txt",
    "dir_out/../outside.txt",
]
PRIVATE = [
    ".opencode",
    ".opencode/events.jsonl",
    "./.opencode/events.jsonl",
    ".git",
    ".git/config",
    "src/../.git/config",
    "dir_in/../.git/config",
    "link_log/events.jsonl",
    "link_git",
    "sub/.git/HEAD",
]
READS = [
    ("read_file", {}),
    ("list_files", {}),
    ("grep", {"pattern": "."}),
]
WRITES = [
    ("write_file", {"content": "pwned secret\n"}),
    ("edit_file", {"old": "secret", "new": "pwned"}),
]


def _reason(path: str) -> tuple[str, ...]:
    if path in PRIVATE:
        return ("may not touch",)
    return ("outside the workspace", "is absolute")


@pytest.mark.parametrize("path", ESCAPES + PRIVATE)
@pytest.mark.parametrize(("tool", "extra"), READS)
def test_reads_that_leave_the_workspace_or_enter_private_folders_are_refused(
    root: Path, path: str, tool: str, extra: dict[str, Any]
) -> None:
    output, is_error = call(box(root), tool, path=path, **extra)
    assert is_error, output
    assert any(reason in output for reason in _reason(path)), output
    assert "secret" not in output


@pytest.mark.parametrize("path", [*ESCAPES, *PRIVATE, "dir_out/new.txt", "dir_out/deep/new.txt"])
@pytest.mark.parametrize(("tool", "extra"), WRITES)
def test_writes_that_leave_the_workspace_are_refused_even_when_leased(
    root: Path, path: str, tool: str, extra: dict[str, Any]
) -> None:
    seen: list[str] = []
    toolbox = box(root, writable=[path], seen=seen)
    before = snapshot(root.parent)
    output, is_error = call(toolbox, tool, path=path, **extra)
    assert is_error, output
    assert "secret" not in output
    assert snapshot(root.parent) == before
    assert seen == []


@pytest.mark.parametrize("path", ["src/app.py", "new.py", "src/new.py", "link_in", "dir_in/app.py"])
@pytest.mark.parametrize(("tool", "extra"), WRITES)
def test_writes_outside_the_lease_are_refused_and_change_nothing(
    root: Path, path: str, tool: str, extra: dict[str, Any]
) -> None:
    seen: list[str] = []
    before = snapshot(root.parent)
    output, is_error = call(box(root, writable=["owned.py"], seen=seen), tool, path=path, **extra)
    assert is_error and "you may write only: owned.py" in output
    assert snapshot(root.parent) == before
    assert seen == []


@pytest.mark.parametrize(("tool", "extra"), WRITES)
def test_a_read_only_role_cannot_write_anything(
    root: Path, tool: str, extra: dict[str, Any]
) -> None:
    before = snapshot(root.parent)
    for path in ("src/app.py", "new.py"):
        output, is_error = call(box(root, writable=None), tool, path=path, **extra)
        assert is_error and "cannot write" in output
    assert snapshot(root.parent) == before


def test_an_absolute_path_is_refused_even_when_it_names_a_file_inside(root: Path) -> None:
    inside = str(root / "src" / "app.py")
    toolbox = box(root, writable=[inside, "src/app.py"])
    output, is_error = call(toolbox, "read_file", path=inside)
    assert is_error and "is absolute" in output
    assert call(toolbox, "write_file", path=inside, content="")[1]
    assert (root / "src" / "app.py").read_text() == "print('hi')\n"


@pytest.mark.parametrize("path", ["", "   ", "loop", "loop/x", "a\x00b"])
def test_unresolvable_paths_are_errors_not_crashes(root: Path, path: str) -> None:
    toolbox = box(root, writable=[path] if path.strip() else [])
    for tool, extra in [*READS, *WRITES]:
        output, is_error = call(toolbox, tool, path=path, **extra)
        assert is_error and output.startswith("error: ") and "failed:" not in output, output


def test_symlinks_that_stay_inside_are_followed(root: Path) -> None:
    toolbox = box(root)
    assert "print('hi')" in call(toolbox, "read_file", path="link_in")[0]
    assert "print('hi')" in call(toolbox, "read_file", path="dir_in/app.py")[0]
    assert call(toolbox, "list_files", path="dir_in")[0] == "src/app.py"
    assert call(toolbox, "grep", pattern="hi", path="dir_in")[0] == "src/app.py:1: print('hi')"
    assert "print('hi')" in call(toolbox, "read_file", path="src/../src/app.py")[0]


def test_writes_through_an_inside_symlink_are_checked_against_the_real_path(root: Path) -> None:
    seen: list[str] = []
    toolbox = box(root, writable=["src/app.py", "src/new.py"], seen=seen)
    assert not call(toolbox, "edit_file", path="link_in", old="hi", new="ho")[1]
    assert not call(toolbox, "write_file", path="dir_in/new.py", content="x = 1\n")[1]
    assert (root / "src" / "app.py").read_text() == "print('ho')\n"
    assert (root / "src" / "new.py").read_text() == "x = 1\n"
    assert seen == ["src/app.py", "src/new.py"]


def test_listing_and_grepping_the_whole_workspace_never_leaves_it(root: Path) -> None:
    toolbox = box(root)
    assert call(toolbox, "list_files", path=".")[0].splitlines() == ["link_in", "src/app.py"]
    assert call(toolbox, "grep", pattern="secret", path=".") == ("no match for 'secret'", False)
    assert call(toolbox, "grep", pattern="hi")[0].splitlines() == [
        "link_in:1: print('hi')",
        "src/app.py:1: print('hi')",
    ]


def test_on_before_write_sees_the_file_before_it_changes(root: Path) -> None:
    baseline: dict[str, str | None] = {}

    def before_write(rel: str) -> None:
        path = root / rel
        baseline[rel] = path.read_text() if path.exists() else None

    workspace = Workspace(root, writable=["src/app.py", "pkg/new.py"], on_before_write=before_write)
    toolbox = Toolbox(worker_tools(WebConfig()), ToolContext(workspace=workspace))
    assert not call(toolbox, "edit_file", path="./src/app.py", old="hi", new="ho")[1]
    assert not call(toolbox, "write_file", path="pkg//new.py", content="a = 1\n")[1]
    assert baseline == {"src/app.py": "print('hi')\n", "pkg/new.py": None}
    assert (root / "pkg" / "new.py").read_text() == "a = 1\n"


def test_a_refusing_on_before_write_stops_the_write(root: Path) -> None:
    def refuse(rel: str) -> None:
        raise RuntimeError(f"no baseline for {rel}")

    workspace = Workspace(root, writable=["src/app.py"], on_before_write=refuse)
    toolbox = Toolbox(worker_tools(WebConfig()), ToolContext(workspace=workspace))
    output, is_error = call(toolbox, "write_file", path="src/app.py", content="")
    assert is_error and "no baseline for src/app.py" in output
    assert (root / "src" / "app.py").read_text() == "print('hi')\n"
