"""read_file, write_file, edit_file, list_files and grep on real files."""

from __future__ import annotations

import json
import os
import resource
import signal
import threading
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from ocactors.tools import Toolbox, ToolContext, WebConfig, Workspace, worker_tools
from ocactors.tools.files import MAX_LINES, MAX_LISTED
from ocactors.tools.search import MAX_MATCHES


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "app.py").write_text("import os\n\nprint('hi')\n")
    return ws


def box(root: Path, writable: list[str] | None = None) -> Toolbox:
    return Toolbox(worker_tools(WebConfig()), ToolContext(Workspace(root, writable=writable)))


def call(toolbox: Toolbox, name: str, **args: Any) -> tuple[str, bool]:
    result = toolbox.call(name, json.dumps(args))
    return result.output, result.is_error


def bounded(fn: Callable[[], tuple[str, bool]], fifo: Path) -> tuple[str, bool]:
    """``fn()`` run in a thread for at most 5 s; a reader stuck on ``fifo`` is released."""
    results: list[tuple[str, bool]] = []
    done = threading.Event()

    def run() -> None:
        results.append(fn())
        done.set()

    threading.Thread(target=run, daemon=True).start()
    if not done.wait(timeout=5):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # unblocks the stuck open()
        done.wait(timeout=5)
        pytest.fail("the tool blocked on a FIFO")
    return results[0]


@pytest.fixture
def big(root: Path) -> Path:
    (root / "big.txt").write_text("".join(f"line {i}\n" for i in range(1, 1001)))
    return root


def test_read_file_numbers_lines_and_says_where_to_go_on(big: Path) -> None:
    output, is_error = call(box(big), "read_file", path="big.txt")
    lines = output.splitlines()
    assert not is_error and len(lines) == MAX_LINES + 1
    assert lines[0] == "    1  line 1" and lines[MAX_LINES - 1] == "  400  line 400"
    assert lines[-1] == "[big.txt: lines 1-400 of 1000] (more: read_file with start_line=401)"


@pytest.mark.parametrize(
    ("start", "count", "first", "last", "note"),
    [
        (
            990,
            5,
            990,
            994,
            "[big.txt: lines 990-994 of 1000] (more: read_file with start_line=995)",
        ),
        (901, 400, 901, 1000, "[big.txt: lines 901-1000 of 1000]"),
        (1000, 1, 1000, 1000, "[big.txt: lines 1000-1000 of 1000]"),
        (0, 2, 1, 2, "[big.txt: lines 1-2 of 1000] (more: read_file with start_line=3)"),
        (5, 0, 5, 5, "[big.txt: lines 5-5 of 1000] (more: read_file with start_line=6)"),
        (1, 5000, 1, MAX_LINES, "(more: read_file with start_line=401)"),
    ],
)
def test_read_file_ranges(
    big: Path, start: int, count: int, first: int, last: int, note: str
) -> None:
    output, is_error = call(
        box(big), "read_file", path="big.txt", start_line=start, max_lines=count
    )
    *body, footer = output.splitlines()
    assert not is_error
    assert body[0].split() == [str(first), "line", str(first)]
    assert body[-1].split() == [str(last), "line", str(last)]
    assert len(body) == last - first + 1 and note in footer


def test_read_file_past_the_end_says_how_long_the_file_is(big: Path) -> None:
    output, is_error = call(box(big), "read_file", path="big.txt", start_line=1001)
    assert is_error and "start_line 1001 is past the end of big.txt (1000 lines)" in output


def test_read_file_streams_a_huge_file(root: Path) -> None:
    line = "x" * 199 + "\n"
    with open(root / "huge.log", "w") as handle:
        for _ in range(100):
            handle.write(line * 1500)
    tracemalloc.start()
    try:
        output, is_error = call(box(root), "read_file", path="huge.log", start_line=149_999)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not is_error and "[huge.log: lines 149999-150000 of 150000]" in output
    assert peak < 5_000_000  # the file is 30 MB


def test_read_file_clips_a_very_long_line(root: Path) -> None:
    (root / "min.js").write_text("a" * 50_000 + "\nshort\n")
    output, _ = call(box(root), "read_file", path="min.js")
    assert "[... line cut]" in output and "short" in output and len(output) < 3000


def test_read_file_reports_binary_empty_missing_and_directories(root: Path) -> None:
    (root / "blob.bin").write_bytes(b"PK\x03\x04" + b"\x00\x01" * 100)
    (root / "empty.txt").write_text("")
    toolbox = box(root)
    assert call(toolbox, "read_file", path="blob.bin") == (
        "error: blob.bin is a binary file (204 bytes); not shown",
        True,
    )
    assert call(toolbox, "read_file", path="empty.txt") == ("empty.txt is empty", False)
    assert call(toolbox, "read_file", path="missing.txt") == (
        "error: missing.txt does not exist",
        True,
    )
    output, is_error = call(toolbox, "read_file", path="src")
    assert is_error and "is a directory; use list_files" in output


def test_read_file_replaces_undecodable_bytes_and_drops_line_ends(root: Path) -> None:
    (root / "latin.txt").write_bytes(b"caf\xe9\r\nnext\r\n")
    output, is_error = call(box(root), "read_file", path="latin.txt")
    assert not is_error
    assert output.splitlines()[:2] == ["    1  caf\ufffd", "    2  next"]


def test_a_fifo_is_refused_without_blocking(root: Path) -> None:
    os.mkfifo(root / "pipe")
    toolbox = box(root, writable=["pipe"])
    for name, args in (
        ("read_file", {}),
        ("edit_file", {"old": "a", "new": "b"}),
        ("write_file", {"content": "x"}),
    ):
        output, is_error = bounded(partial(call, toolbox, name, path="pipe", **args), root / "pipe")
        assert is_error and "not a regular file" in output, (name, output)


def test_write_file_creates_folders_and_replaces_content(root: Path) -> None:
    toolbox = box(root, writable=["pkg/deep/mod.py", "src/app.py"])
    assert call(toolbox, "write_file", path="pkg/deep/mod.py", content="a = 1\nb = 2\n") == (
        "wrote pkg/deep/mod.py (2 lines)",
        False,
    )
    assert call(toolbox, "write_file", path="src/app.py", content="")[1] is False
    assert (root / "pkg" / "deep" / "mod.py").read_text() == "a = 1\nb = 2\n"
    assert (root / "src" / "app.py").read_text() == ""


def test_write_file_refuses_a_directory(root: Path) -> None:
    output, is_error = call(box(root, writable=["src"]), "write_file", path="src", content="x")
    assert is_error and "src is a directory" in output and (root / "src").is_dir()


def test_edit_file_needs_exactly_one_occurrence(root: Path) -> None:
    (root / "x.py").write_text("a = 1\na = 1\nb = 2\n")
    toolbox = box(root, writable=["x.py"])
    assert call(toolbox, "edit_file", path="x.py", old="a = 1", new="c") == (
        "error: old occurs 2 times in x.py; it must occur exactly once",
        True,
    )
    assert call(toolbox, "edit_file", path="x.py", old="z = 9", new="c") == (
        "error: old does not occur in x.py; it must occur exactly once",
        True,
    )
    assert (root / "x.py").read_text() == "a = 1\na = 1\nb = 2\n"
    assert call(toolbox, "edit_file", path="x.py", old="a = 1\nb", new="b") == (
        "edited x.py",
        False,
    )
    assert (root / "x.py").read_text() == "a = 1\nb = 2\n"


def test_edit_file_refuses_what_it_cannot_edit_safely(root: Path) -> None:
    (root / "latin.txt").write_bytes(b"caf\xe9 = 1\n")
    (root / "blob.bin").write_bytes(b"a\x00b")
    toolbox = box(root, writable=["latin.txt", "blob.bin", "missing.py", "src/app.py"])
    cases = {
        "latin.txt": "not valid UTF-8",
        "blob.bin": "binary",
        "missing.py": "does not exist",
        "src/app.py": "old is empty",
    }
    for path, reason in cases.items():
        output, is_error = call(
            toolbox, "edit_file", path=path, old="" if "app" in path else "1", new="2"
        )
        assert is_error and reason in output, (path, output)
    assert (root / "latin.txt").read_bytes() == b"caf\xe9 = 1\n"
    assert (root / "src" / "app.py").read_text() == "import os\n\nprint('hi')\n"


def test_edit_file_keeps_crlf_line_ends(root: Path) -> None:
    (root / "win.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    toolbox = box(root, writable=["win.txt"])
    assert call(toolbox, "edit_file", path="win.txt", old="two\nthree", new="2\n3")[1] is False
    assert (root / "win.txt").read_bytes() == b"one\r\n2\r\n3\r\n"


@pytest.fixture
def tree(root: Path) -> Path:
    for rel in (
        "src/pkg/mod.py",
        "src/pkg/data.json",
        "README.md",
        "node_modules/dep/index.js",
        "node_modules/dep/x.py",
        "src/node_modules/y.py",
        "src/__pycache__/app.cpython-311.pyc",
        ".venv/lib/site.py",
        "vendor/.git/config",
        ".opencode/events.jsonl",
        ".git/HEAD",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("needle\n")
    return root


def test_list_files_walks_the_tree_and_skips_tool_private_and_generated_folders(tree: Path) -> None:
    toolbox = box(tree)
    assert call(toolbox, "list_files")[0].splitlines() == [
        "README.md",
        "src/app.py",
        "src/pkg/data.json",
        "src/pkg/mod.py",
    ]
    assert call(toolbox, "list_files", pattern="*.py")[0].splitlines() == [
        "src/app.py",
        "src/pkg/mod.py",
    ]
    assert call(toolbox, "list_files", path="src/pkg", pattern="src/pkg/*.json")[0] == (
        "src/pkg/data.json"
    )
    output, is_error = call(toolbox, "list_files", pattern="*.rs")
    assert not is_error and output.startswith("no files match '*.rs' under . (what git ignores")


def test_list_files_needs_a_directory_and_caps_its_answer(root: Path) -> None:
    for i in range(MAX_LISTED + 7):
        (root / f"f{i:04}.txt").write_text("")
    toolbox = box(root)
    output, _ = call(toolbox, "list_files", pattern="*.txt")
    assert len(output.splitlines()) == MAX_LISTED + 1
    assert output.splitlines()[-1] == (
        "[... 7 more files: narrow it with a folder as path or a pattern]"
    )
    assert call(toolbox, "list_files", path="src/app.py") == (
        "error: src/app.py is not a directory",
        True,
    )


def test_grep_reports_file_and_line_of_each_match(tree: Path) -> None:
    (tree / "src" / "pkg" / "mod.py").write_text("a\nneedle one\nb\nNEEDLE two\n")
    toolbox = box(tree)
    assert call(toolbox, "grep", pattern="(?i)needle", path="src")[0].splitlines() == [
        "src/pkg/data.json:1: needle",
        "src/pkg/mod.py:2: needle one",
        "src/pkg/mod.py:4: NEEDLE two",
    ]
    assert call(toolbox, "grep", pattern=r"^needle \w+$", path="src/pkg/mod.py")[0] == (
        "src/pkg/mod.py:2: needle one"
    )
    assert "README.md:1: needle" in call(toolbox, "grep", pattern="needle")[0]
    assert call(toolbox, "grep", pattern="haystack") == ("no match for 'haystack'", False)


def test_grep_skips_binaries_and_caps_matches(root: Path) -> None:
    (root / "blob.bin").write_bytes(b"needle\x00needle\n")
    (root / "many.txt").write_text("needle\n" * (MAX_MATCHES + 50))
    output, _ = call(box(root), "grep", pattern="needle")
    lines = output.splitlines()
    assert "blob.bin" not in output
    assert len(lines) == MAX_MATCHES + 1 and lines[-1] == f"[stopped at {MAX_MATCHES} matches]"


def test_grep_refuses_an_invalid_pattern(root: Path) -> None:
    output, is_error = call(box(root), "grep", pattern="(unclosed")
    assert is_error and "invalid regular expression '(unclosed'" in output


def test_grep_and_read_file_agree_on_line_numbers(root: Path) -> None:
    (root / "odd.txt").write_text("a\x0cb\x1cc\u2028d\ntarget\n")
    toolbox = box(root)
    assert call(toolbox, "grep", pattern="target")[0] == "odd.txt:2: target"
    assert call(toolbox, "read_file", path="odd.txt", start_line=2)[0].startswith("    2  target")


def test_grep_passes_over_fifos_dangling_links_and_loops(root: Path) -> None:
    os.mkfifo(root / "pipe")
    (root / "dangling").symlink_to(root / "nowhere.txt")
    (root / "loop").symlink_to("loop")
    toolbox = box(root)
    assert bounded(lambda: call(toolbox, "grep", pattern="hi"), root / "pipe") == (
        "src/app.py:3: print('hi')",
        False,
    )
    listed, is_error = bounded(lambda: call(toolbox, "list_files"), root / "pipe")
    assert not is_error and "src/app.py" in listed.splitlines()


# --- atomic writes ------------------------------------------------------------------------


def test_write_file_replaces_a_hard_link_instead_of_writing_through(
    root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("the outside file\n")
    (root / "calc").mkdir()
    os.link(outside, root / "calc" / "add.py")  # ln /outside/file calc/add.py
    toolbox = box(root, writable=["calc/add.py"])
    assert call(toolbox, "write_file", path="calc/add.py", content="x = 1\n")[1] is False
    assert outside.read_text() == "the outside file\n"
    assert (root / "calc" / "add.py").read_text() == "x = 1\n"
    assert os.stat(root / "calc" / "add.py").st_nlink == 1


def test_edit_file_replaces_a_hard_link_instead_of_writing_through(
    root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("a = 1\n")
    os.link(outside, root / "src" / "linked.py")
    toolbox = box(root, writable=["src/linked.py"])
    assert call(toolbox, "edit_file", path="src/linked.py", old="a = 1", new="a = 2")[1] is False
    assert outside.read_text() == "a = 1\n"
    assert (root / "src" / "linked.py").read_text() == "a = 2\n"


@pytest.mark.parametrize("mode", [0o755, 0o600, 0o640])
def test_writes_keep_the_mode_bits(root: Path, mode: int) -> None:
    script = root / "run.sh"
    script.write_text("echo one\n")
    script.chmod(mode)
    toolbox = box(root, writable=["run.sh"])
    assert call(toolbox, "write_file", path="run.sh", content="echo two\n")[1] is False
    assert script.stat().st_mode & 0o7777 == mode
    assert call(toolbox, "edit_file", path="run.sh", old="two", new="three")[1] is False
    assert script.stat().st_mode & 0o7777 == mode
    assert script.read_text() == "echo three\n"


def test_a_new_file_gets_the_umask_mode(root: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    assert (
        call(box(root, writable=["new.py"]), "write_file", path="new.py", content="x\n")[1] is False
    )
    assert (root / "new.py").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temp(root: Path) -> None:
    toolbox = box(root, writable=["src/app.py"])
    before = (root / "src" / "app.py").read_text()
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits[1]))  # writes past 4 KiB: EFBIG
    try:
        output, is_error = call(toolbox, "write_file", path="src/app.py", content="x" * 100_000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert is_error and "File too large" in output, output
    assert (root / "src" / "app.py").read_text() == before
    assert sorted(p.name for p in (root / "src").iterdir()) == ["app.py"]


def test_writes_leave_no_temp_files(root: Path) -> None:
    toolbox = box(root, writable=["src/app.py", "src/b.py"])
    for content in ("1\n", "2\n", "3\n"):
        assert call(toolbox, "write_file", path="src/b.py", content=content)[1] is False
    assert call(toolbox, "edit_file", path="src/app.py", old="hi", new="ho")[1] is False
    assert sorted(p.name for p in (root / "src").iterdir()) == ["app.py", "b.py"]
