"""Preflight: a mistaken model setting stops `ocactors task` before any mission exists.

Each case runs the real command against a loopback server that answers as the mistaken
endpoint would, and checks exit 2, one line naming the setting, and no mission folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ocactors.actors.models import (
    ModelFlags,
    PreflightError,
    ScriptedModelServer,
    make_http_client,
    preflight,
    resolve_models,
)
from tests._models_helpers import SECRET, closed_port

Route = tuple[int, str, bytes]  # status, content type, body
HTML = (200, "text/html; charset=utf-8", b"<!DOCTYPE html><html><body>Open WebUI</body></html>")


def as_json(status: int, body: Any) -> Route:
    return status, "application/json", json.dumps(body).encode()


@contextmanager
def endpoint(routes: Mapping[str, Route], default: Route) -> Iterator[tuple[str, list[str]]]:
    """A loopback server answering GETs by path: (root URL, paths asked)."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            status, kind, body = routes.get(self.path, default)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", asked
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without model settings, keys or proxies, plus ``settings``."""
    drop = ("OCACTORS_", "OPENAI_", "ANTHROPIC_", "NOPE_")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    env = {k: v for k, v in env.items() if "proxy" not in k.lower()}
    return {**env, **settings}


def task(workspace: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocactors.cli", "task", "build it", "-C", str(workspace), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def assert_refused(done: subprocess.CompletedProcess[str], workspace: Path, hint: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert hint in done.stderr, done.stderr
    assert not missions(workspace)


def missions(workspace: Path) -> list[Path]:
    """Mission folders (the workspace claim's ``.lock`` file is not one)."""
    return [path for path in workspace.glob(".opencode/missions/*") if path.is_dir()]


MODELS = as_json(200, {"object": "list", "data": [{"id": "llama3:latest"}, {"id": "qwen"}]})
NOT_FOUND = as_json(404, {"error": {"message": "not found"}})
UNAUTHORIZED = as_json(
    401, {"error": {"message": "Incorrect API key provided.", "code": "invalid_api_key"}}
)


def test_an_unreachable_host(tmp_path: Path) -> None:
    env = clean_env(OCACTORS_BASE_URL=f"http://127.0.0.1:{closed_port()}/v1", OCACTORS_MODEL="qwen")
    done = task(tmp_path, env)
    assert_refused(done, tmp_path, "is the server running, and is OCACTORS_BASE_URL right?")
    assert "cannot reach http://127.0.0.1:" in done.stderr


def test_a_base_url_without_a_scheme(tmp_path: Path) -> None:
    env = clean_env(OCACTORS_BASE_URL="api.example.com/v1", OCACTORS_MODEL="qwen")
    done = task(tmp_path, env)
    hint = "(set OCACTORS_BASE_URL to e.g. https://api.example.com/v1)"
    assert_refused(done, tmp_path, hint)


def test_an_html_page_instead_of_the_api(tmp_path: Path) -> None:
    with endpoint({}, HTML) as (root, _):
        done = task(tmp_path, clean_env(OCACTORS_BASE_URL=root, OCACTORS_MODEL="qwen"))
    hint = f"the server at {root} answered with an HTML page; does OCACTORS_BASE_URL end in /v1?"
    assert_refused(done, tmp_path, hint)


def test_a_missing_v1_is_found_where_the_api_is(tmp_path: Path) -> None:
    with endpoint({"/v1/models": MODELS}, NOT_FOUND) as (root, _):
        done = task(tmp_path, clean_env(OCACTORS_BASE_URL=root, OCACTORS_MODEL="qwen"))
    assert_refused(done, tmp_path, f"set OCACTORS_BASE_URL to {root}/v1")


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        (SECRET, "refused the API key from OCACTORS_API_KEY (HTTP 401: Incorrect API key"),
        (None, "wants an API key (HTTP 401: Incorrect API key provided.): set OCACTORS_API_KEY"),
    ],
)
def test_a_refused_or_missing_key(tmp_path: Path, key: str | None, hint: str) -> None:
    settings = {"OCACTORS_MODEL": "qwen"} | ({"OCACTORS_API_KEY": key} if key else {})
    with endpoint({}, UNAUTHORIZED) as (root, _):
        done = task(tmp_path, clean_env(OCACTORS_BASE_URL=f"{root}/v1", **settings))
    assert_refused(done, tmp_path, hint)
    assert SECRET not in done.stderr


def test_an_unknown_model(tmp_path: Path) -> None:
    with endpoint({"/v1/models": MODELS}, NOT_FOUND) as (root, asked):
        env = clean_env(OCACTORS_BASE_URL=f"{root}/v1", OCACTORS_MODEL="gpt-9")
        done = task(tmp_path, env)
    hint = "does not serve model 'gpt-9' (it lists llama3:latest, qwen): set OCACTORS_MODEL"
    assert_refused(done, tmp_path, hint)
    assert asked == ["/v1/models", "/v1/models/gpt-9"]  # one list, one lookup, for 3 roles


def test_an_unknown_anthropic_model(tmp_path: Path) -> None:
    missing = as_json(
        404,
        {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-9"}},
    )
    with endpoint({}, missing) as (root, asked):
        env = clean_env(
            OCACTORS_BASE_URL=root,
            OCACTORS_PROVIDER="anthropic",
            OCACTORS_MODEL="claude-9",
            OCACTORS_API_KEY=SECRET,
        )
        done = task(tmp_path, env)
    assert_refused(done, tmp_path, "does not know model 'claude-9' (model: claude-9)")
    assert asked == ["/v1/models/claude-9"]


def test_an_api_key_env_naming_an_unset_variable(tmp_path: Path) -> None:
    (tmp_path / ".opencode").mkdir()
    (tmp_path / ".opencode" / "ocactors.toml").write_text(
        '[models]\nmodel = "qwen"\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "NOPE_KEY"\n'
    )
    ambient = {"OPENAI_API_KEY": "ambient-test-value"}  # a key set for another provider
    done = task(tmp_path, clean_env(**ambient))
    hint = (
        "NOPE_KEY is not set, but api_key_env under [models] in .opencode/ocactors.toml "
        "names it: export NOPE_KEY=<your key>"
    )
    assert_refused(done, tmp_path, hint)


def test_no_preflight_skips_the_check(tmp_path: Path) -> None:
    env = clean_env(OCACTORS_BASE_URL=f"http://127.0.0.1:{closed_port()}/v1", OCACTORS_MODEL="qwen")
    done = task(tmp_path, env, "--no-preflight", "--max-iterations", "1")
    assert done.returncode == 1, done.stderr  # the mission ran, and failed on the model
    assert missions(tmp_path)


# --- what passes quietly (in process) --------------------------------------------------


def check(base_url: str, model: str, **env: str) -> None:
    flags = ModelFlags(model=model, base_url=base_url)
    config = resolve_models(Path("/nonexistent"), flags, env)
    with make_http_client(env={}) as http:
        preflight(config, http)


@pytest.mark.parametrize(
    ("routes", "model"),
    [
        ({}, "qwen"),  # no /models at all, and no /v1 below
        ({"/v1/models": MODELS}, "llama3"),  # Ollama's implicit :latest
        ({"/v1/models": as_json(500, {"error": "busy"})}, "qwen"),  # the run retries that
        (
            {"/v1/models": as_json(200, {"data": [{"id": "x.gguf", "owned_by": "llamacpp"}]})},
            "anything",  # llama.cpp serves its one model under any name
        ),
        ({"/v1/models": MODELS, "/v1/models/gpt-9": as_json(200, {"id": "gpt-9"})}, "gpt-9"),
    ],
)
def test_what_passes_quietly(routes: dict[str, Route], model: str) -> None:
    with endpoint(routes, NOT_FOUND) as (root, _):
        check(f"{root}/v1", model)


def test_the_scripted_server_passes_for_any_model() -> None:
    with ScriptedModelServer({}) as server:
        check(server.base_url, "scripted")
        check(server.base_url, "recorded-model")
        check(server.root_url, "claude-x", OCACTORS_PROVIDER="anthropic", OCACTORS_API_KEY="k")


def test_a_preflight_error_is_a_config_error_of_one_line() -> None:
    with pytest.raises(PreflightError) as caught:
        check(f"http://127.0.0.1:{closed_port()}/v1", "qwen")
    assert "\n" not in str(caught.value)


def test_a_dead_proxy_is_named(tmp_path: Path) -> None:
    env = clean_env(
        OCACTORS_BASE_URL="https://api.example.com/v1",
        OCACTORS_MODEL="qwen",
        HTTPS_PROXY=f"http://127.0.0.1:{closed_port()}",
    )
    done = task(tmp_path, env)
    assert_refused(done, tmp_path, "from HTTPS_PROXY")
    assert "is that proxy running, or should NO_PROXY list this host?" in done.stderr
