"""The tools: confined to the workspace, writing only the lease, never raising."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ocactors.tools import (
    ShellConfig,
    Toolbox,
    ToolContext,
    ToolError,
    ToolSpec,
    WebConfig,
    Workspace,
    planner_tools,
    reviewer_tools,
    worker_tools,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "app.py").write_text("print('hi')\n")
    (ws / ".opencode").mkdir()
    (ws / ".opencode" / "events.jsonl").write_text("{}\n")
    (ws / ".git").mkdir()
    (ws / ".git" / "config").write_text("[core]\n")
    (tmp_path / "outside.txt").write_text("secret\n")
    (tmp_path / "outdir").mkdir()
    (ws / "link_out").symlink_to(tmp_path / "outside.txt")
    (ws / "dir_out").symlink_to(tmp_path / "outdir")
    (ws / "link_in").symlink_to(ws / "src" / "app.py")
    (ws / "link_log").symlink_to(ws / ".opencode")
    return ws


def box(root: Path, writable: list[str] | None = None, **config: Any) -> Toolbox:
    ctx = ToolContext(workspace=Workspace(root, writable=writable), shell=ShellConfig(**config))
    return Toolbox(worker_tools(WebConfig()), ctx)


def call(toolbox: Toolbox, name: str, **args: Any) -> tuple[str, bool]:
    result = toolbox.call(name, json.dumps(args))
    return result.output, result.is_error


ESCAPES = ["../outside.txt", "src/../../outside.txt", "/etc/passwd", "~/x", "link_out", "dir_out/x"]
PRIVATE = [".opencode/events.jsonl", ".git/config", "link_log/events.jsonl", "src/../.git/config"]


@pytest.mark.parametrize("path", ESCAPES + PRIVATE)
def test_reads_outside_the_workspace_or_into_private_folders_are_refused(
    root: Path, path: str
) -> None:
    toolbox = box(root)
    for name, args in (
        ("read_file", {"path": path}),
        ("list_files", {"path": path}),
        ("grep", {"pattern": ".", "path": path}),
    ):
        output, is_error = call(toolbox, name, **args)
        assert is_error, (name, path, output)
        assert "secret" not in output


@pytest.mark.parametrize("path", [*ESCAPES, *PRIVATE, "src/app.py", "new.py"])
def test_writes_outside_the_lease_are_refused_and_change_nothing(root: Path, path: str) -> None:
    toolbox = box(root, writable=["owned.py"])
    before = {p: p.read_bytes() for p in root.parent.rglob("*") if p.is_file()}
    for name, args in (
        ("write_file", {"path": path, "content": "x"}),
        ("edit_file", {"path": path, "old": "secret", "new": "x"}),
    ):
        output, is_error = call(toolbox, name, **args)
        assert is_error, (name, path, output)
    after = {p: p.read_bytes() for p in root.parent.rglob("*") if p.is_file()}
    assert after == before


def test_the_lease_is_writable_and_the_baseline_is_taken_first(root: Path) -> None:
    seen: list[str] = []
    ctx = ToolContext(
        workspace=Workspace(
            root, writable=["pkg/new.py", "src/app.py"], on_before_write=seen.append
        )
    )
    toolbox = Toolbox(worker_tools(WebConfig()), ctx)
    assert call(toolbox, "write_file", path="pkg/new.py", content="a = 1\n")[1] is False
    assert call(toolbox, "edit_file", path="./src/app.py", old="hi", new="ho")[1] is False
    assert (root / "pkg" / "new.py").read_text() == "a = 1\n"
    assert (root / "src" / "app.py").read_text() == "print('ho')\n"
    assert seen == ["pkg/new.py", "src/app.py"]


def test_a_read_only_role_cannot_write(root: Path) -> None:
    output, is_error = call(box(root, writable=None), "write_file", path="a.py", content="")
    assert is_error and "cannot write" in output


def test_symlinks_inside_the_workspace_are_fine(root: Path) -> None:
    output, is_error = call(box(root), "read_file", path="link_in")
    assert not is_error and "print('hi')" in output


def test_read_file_ranges_binary_and_empty(root: Path) -> None:
    (root / "big.txt").write_text("".join(f"line {i}\n" for i in range(1, 1001)))
    (root / "blob.bin").write_bytes(b"\x00\x01" * 100)
    (root / "empty.txt").write_text("")
    toolbox = box(root)
    first, _ = call(toolbox, "read_file", path="big.txt")
    assert "line 400" in first and "line 401" not in first and "start_line=401" in first
    later, _ = call(toolbox, "read_file", path="big.txt", start_line=990, max_lines=5)
    assert "line 990" in later and "line 995" not in later
    binary, is_error = call(toolbox, "read_file", path="blob.bin")
    assert is_error and "binary" in binary and "200 bytes" in binary
    assert "empty" in call(toolbox, "read_file", path="empty.txt")[0]
    assert call(toolbox, "read_file", path="missing.txt")[1]


def test_edit_file_needs_exactly_one_occurrence(root: Path) -> None:
    (root / "x.py").write_text("a\na\nb\n")
    toolbox = box(root, writable=["x.py"])
    twice, err = call(toolbox, "edit_file", path="x.py", old="a", new="c")
    assert err and "occurs 2 times" in twice
    never, err = call(toolbox, "edit_file", path="x.py", old="z", new="c")
    assert err and "does not occur" in never
    assert call(toolbox, "edit_file", path="x.py", old="b", new="c")[1] is False
    assert (root / "x.py").read_text() == "a\na\nc\n"


def test_list_files_and_grep(root: Path) -> None:
    (root / "node_modules").mkdir()
    (root / "node_modules" / "m.py").write_text("x")
    toolbox = box(root)
    listed, _ = call(toolbox, "list_files", path=".", pattern="*.py")
    assert listed.splitlines() == ["src/app.py"]
    assert "link_out" not in call(toolbox, "list_files", path=".")[0]
    found, _ = call(toolbox, "grep", pattern=r"print\(", path=".")
    assert "src/app.py:1:" in found
    everything, _ = call(toolbox, "grep", pattern="^secret", path=".")
    assert everything.startswith("no match")  # the link that leads out is not searched
    bad, is_error = call(toolbox, "grep", pattern="(", path=".")
    assert is_error and "invalid regular expression" in bad


def test_run_command_reports_code_output_and_runs_in_the_workspace(root: Path) -> None:
    os.environ["OCACTORS_API_KEY"] = "sk-never-visible-to-children"
    try:
        output, _ = call(
            box(root),
            "run_command",
            command='pwd; echo "key=${OCACTORS_API_KEY:-none}"; command -v python; exit 3',
        )
    finally:
        del os.environ["OCACTORS_API_KEY"]
    assert "exit code: 3" in output
    assert str(root) in output and "key=none" in output
    assert str(Path(sys.executable).parent) in output


def test_run_command_timeout_kills_the_whole_process_group(root: Path) -> None:
    started = time.monotonic()
    output, _ = call(
        box(root), "run_command", command="sleep 30 & echo $! > child.pid; wait", timeout=0.5
    )
    assert "timed out" in output and time.monotonic() - started < 5
    child = int((root / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_run_command_output_keeps_head_and_tail(root: Path) -> None:
    output, _ = call(
        box(root, output_limit=1000),
        "run_command",
        command="python -c \"print('HEAD' + 'x' * 5000 + 'TAIL')\"",
    )
    assert "HEAD" in output and "TAIL" in output and "characters elided" in output
    assert len(output) < 2500


def test_the_allow_list_refuses_other_commands(root: Path) -> None:
    output, is_error = call(box(root, allow_prefixes=("python",)), "run_command", command="ls")
    assert is_error and "must start with one of: python" in output


def test_malformed_calls_come_back_as_errors_naming_the_problem(root: Path) -> None:
    toolbox = box(root)
    assert "unknown tool 'fly'" in toolbox.call("fly", "{}").output
    assert "not valid JSON" in toolbox.call("read_file", "{oops").output
    assert "`$.path`" in toolbox.call("read_file", '{"path": 3}').output
    assert "missing required field `path`" in toolbox.call("read_file", "{}").output


def test_a_raising_tool_becomes_an_error_result(root: Path) -> None:
    class NoArgs(msgspec.Struct):
        pass

    def explode(ctx: ToolContext, args: NoArgs) -> str:
        raise RuntimeError("boom")

    toolbox = Toolbox([ToolSpec("explode", "d", NoArgs, explode)], ToolContext(Workspace(root)))
    result = toolbox.call("explode", "{}")
    assert result.is_error and "RuntimeError: boom" in result.output


def test_schemas_are_plain_json_schema_objects(root: Path) -> None:
    for spec in worker_tools(WebConfig(fetch=True, search_url="http://x")):
        schema = spec.schema()
        assert schema["type"] == "function"
        params = schema["function"]["parameters"]
        assert params["type"] == "object" and "properties" in params
        assert "$ref" not in json.dumps(schema)
    with pytest.raises(ToolError):
        worker_tools(WebConfig())[0].parse("[]")


def test_toolsets_per_role(root: Path) -> None:
    names = lambda specs: {s.name for s in specs}  # noqa: E731
    assert names(planner_tools(WebConfig())) == {"read_file", "list_files", "grep"}
    assert "run_command" in names(reviewer_tools(WebConfig()))
    assert "write_file" not in names(reviewer_tools(WebConfig()))
    assert {"web_fetch", "web_search"} <= names(
        planner_tools(WebConfig(fetch=True, search_url="http://127.0.0.1:1/search"))
    )


class _Web(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        if self.path.startswith("/search"):
            body = json.dumps({"results": [{"title": "T", "url": "http://u", "content": "c"}]})
            kind = "application/json"
        elif self.path == "/page":
            body = "<html><script>x()</script><h1>Title</h1><p>Hello &amp; bye</p></html>"
            kind = "text/html"
        else:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def web() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Web)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_web_fetch_caches_and_web_search_formats(root: Path, web: str) -> None:
    import httpx

    cache = root / ".opencode" / "docs"
    with httpx.Client() as http:
        ctx = ToolContext(
            Workspace(root),
            web=WebConfig(fetch=True, search_url=f"{web}/search", cache_dir=cache),
            http=http,
        )
        toolbox = Toolbox(planner_tools(ctx.web), ctx)
        _Web.hits = 0
        page, _ = call(toolbox, "web_fetch", url=f"{web}/page")
        again, _ = call(toolbox, "web_fetch", url=f"{web}/page")
        assert "Title" in page and "Hello & bye" in page and "x()" not in page
        assert again == page and _Web.hits == 1 and list(cache.iterdir())
        missing, is_error = call(toolbox, "web_fetch", url=f"{web}/nope")
        assert is_error and "404" in missing
        assert call(toolbox, "web_fetch", url="file:///etc/passwd")[1]
        results, _ = call(toolbox, "web_search", query="q")
        assert "- T" in results and "http://u" in results


def test_a_stopping_mission_can_end_commands_still_running(root: Path) -> None:
    config = ShellConfig()
    toolbox = Toolbox(
        worker_tools(WebConfig()), ToolContext(workspace=Workspace(root), shell=config)
    )
    runner = threading.Thread(
        target=call, args=(toolbox, "run_command"), kwargs={"command": "sleep 30", "timeout": 60}
    )
    started = time.monotonic()
    runner.start()
    deadline = time.monotonic() + 5
    while not config.groups.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert config.groups.kill_all() == 1
    runner.join(timeout=10)
    assert not runner.is_alive() and time.monotonic() - started < 10
