"""The patterns models write: globs for list_files, regular expressions for grep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocactors.tools import Toolbox, ToolContext, WebConfig, Workspace, planner_tools


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
