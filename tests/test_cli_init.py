"""`ocactors init`: a commented config from what is found; never overwriting; --opencode."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pexpect
import pytest

from ocactors.actors.models import resolve_models
from ocactors.opencode_commands import command_text
from tests._opencode_helpers import OCACTORS, isolated_env, run

SECRET = "sk-init-secret-9876543210"
CONFIG = Path(".opencode") / "ocactors.toml"


class _Tags(BaseHTTPRequestHandler):
    models: list[str] = []

    def do_GET(self) -> None:
        found = self.path == "/api/tags"
        body = json.dumps({"models": [{"name": m} for m in self.models]}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if found else 0))
        self.end_headers()
        if found:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def ollama() -> Iterator[str]:
    """A fake Ollama on loopback with two models; its host:port as OLLAMA_HOST says it."""
    handler = type("Tags", (_Tags,), {"models": ["qwen2.5-coder:7b", "llama3.2"]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "ws").mkdir()
    (tmp_path / "home").mkdir()
    return tmp_path / "ws"


def env_for(workspace: Path, **extra: str) -> dict[str, str]:
    return isolated_env(workspace.parent / "home", workspace, **extra)


def test_a_running_ollama_is_written_with_its_first_model_and_the_next_command(
    workspace: Path, ollama: str
) -> None:
    done = run("init", env=env_for(workspace, OLLAMA_HOST=ollama), cwd=workspace)
    assert done.returncode == 0, done.stderr
    text = (workspace / CONFIG).read_text()
    assert f"Ollama on {ollama}: qwen2.5-coder:7b, llama3.2" in text
    role = resolve_models(workspace, None, {}).for_role("planner")
    assert (role.model, role.base_url) == ("qwen2.5-coder:7b", f"http://{ollama}/v1")
    assert done.stdout.splitlines() == [
        f"wrote {CONFIG}",
        'next: ocactors task "Add a README that explains how to run the tests"',
    ]


def test_keys_are_named_never_written_and_the_others_stay_as_comments(workspace: Path) -> None:
    env = env_for(workspace, OPENAI_API_KEY=SECRET, ANTHROPIC_API_KEY=SECRET + "x")
    done = run("init", env=env, cwd=workspace)
    text = (workspace / CONFIG).read_text()
    assert SECRET not in text and SECRET not in done.stdout + done.stderr
    assert 'api_key_env = "OPENAI_API_KEY"\n' in text
    assert '# api_key_env = "ANTHROPIC_API_KEY"\n' in text
    role = resolve_models(workspace, None, {"OPENAI_API_KEY": SECRET}).for_role("worker")
    assert (role.provider, role.model, role.api_key) == ("openai", "gpt-4.1-mini", SECRET)


def test_opencodes_model_comes_first_and_resolves_through_its_config(
    workspace: Path, ollama: str
) -> None:
    home = workspace.parent / "home"
    config = {
        "model": "lab/coder",
        "provider": {"lab": {"options": {"baseURL": "http://127.0.0.1:9/v1"}}},
    }
    (home / ".config" / "opencode").mkdir(parents=True)
    (home / ".config" / "opencode" / "opencode.json").write_text(json.dumps(config))
    done = run("init", env=env_for(workspace, OLLAMA_HOST=ollama), cwd=workspace)
    assert done.returncode == 0, done.stderr
    text = (workspace / CONFIG).read_text()
    assert '\nmodel = "lab/coder"\n' in text and '# model = "qwen2.5-coder:7b"' in text
    role = resolve_models(workspace, None, {"HOME": str(home)}).for_role("reviewer")
    assert (role.model, role.base_url) == ("coder", "http://127.0.0.1:9/v1")
    assert "OpenCode config" in role.source


def test_nothing_found_still_explains_and_points_to_the_demo(workspace: Path) -> None:
    done = run("init", env=env_for(workspace), cwd=workspace)
    assert done.returncode == 0
    text = (workspace / CONFIG).read_text()
    assert "# No model found." in text and "Ollama: none answers on 127.0.0.1:9" in text
    assert done.stdout.splitlines()[-1].startswith("next: ocactors demo")
    resolve_models(workspace, None, {"OCACTORS_MODEL": "m", "OCACTORS_BASE_URL": "http://h/v1"})


def test_an_existing_config_is_kept_unless_forced(workspace: Path, ollama: str) -> None:
    (workspace / CONFIG).parent.mkdir()
    (workspace / CONFIG).write_text("# mine\n")
    env = env_for(workspace, OLLAMA_HOST=ollama)
    kept = run("init", env=env, cwd=workspace)
    assert kept.returncode == 0
    assert (workspace / CONFIG).read_text() == "# mine\n"
    assert f"kept {CONFIG}: it exists (--force replaces it)" in kept.stdout
    forced = run("init", "--force", env=env, cwd=workspace)
    assert forced.returncode == 0 and "qwen2.5-coder:7b" in (workspace / CONFIG).read_text()


def test_opencode_commands_are_written_and_a_users_own_is_kept(
    workspace: Path, ollama: str
) -> None:
    commands = workspace / ".opencode" / "commands"
    commands.mkdir(parents=True)
    (commands / "status.md").write_text("my own status\n")
    env = env_for(workspace, OLLAMA_HOST=ollama)
    done = run("init", "--opencode", env=env, cwd=workspace)
    assert done.returncode == 0
    assert "wrote .opencode/commands/task.md" in done.stdout
    assert "kept .opencode/commands/status.md: it exists (--force replaces it)" in done.stdout
    assert (commands / "status.md").read_text() == "my own status\n"
    assert (commands / "task.md").read_text() == command_text("task", "ocactors")
    assert "/task" in done.stdout.splitlines()[-1]
    run("init", "--opencode", "--force", env=env, cwd=workspace)
    assert (commands / "status.md").read_text() == command_text("status", "ocactors")


def test_a_command_of_the_same_name_in_the_older_folder_is_kept(workspace: Path) -> None:
    legacy = workspace / ".opencode" / "command"
    legacy.mkdir(parents=True)
    (legacy / "stop.md").write_text("my own stop\n")
    done = run("init", "--opencode", env=env_for(workspace), cwd=workspace)
    assert "kept .opencode/command/stop.md: it exists (--force replaces it)" in done.stdout
    assert not (workspace / ".opencode" / "commands" / "stop.md").exists()
    assert (workspace / ".opencode" / "commands" / "task.md").exists()


def test_a_terminal_is_asked_which_model(workspace: Path, ollama: str) -> None:
    env = env_for(workspace, OLLAMA_HOST=ollama, OPENAI_API_KEY=SECRET)
    child = pexpect.spawn(
        OCACTORS[0], [*OCACTORS[1:], "init"], cwd=str(workspace), env=env, encoding="utf-8"
    )
    child.expect(r"model for every role \[1-2, default 1\]: ", timeout=30)
    assert "1. qwen2.5-coder:7b on Ollama" in (child.before or "")
    child.sendline("2")
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    assert child.exitstatus == 0
    assert 'api_key_env = "OPENAI_API_KEY"\n' in (workspace / CONFIG).read_text()


def test_no_terminal_is_never_asked(workspace: Path, ollama: str) -> None:
    env = env_for(workspace, OLLAMA_HOST=ollama, OPENAI_API_KEY=SECRET)
    done = run("init", env=env, cwd=workspace)
    assert "model for every role" not in done.stdout + done.stderr
    assert 'base_url = "http://' in (workspace / CONFIG).read_text()
