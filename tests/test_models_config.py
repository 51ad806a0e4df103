"""Model configuration: precedence, per-role settings, Ollama detection, clear errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from ocactors.actors.models import (
    ConfigError,
    LimiterRegistry,
    ModelFlags,
    RetryingClient,
    ScriptedModelServer,
    Turn,
    build_client,
    build_clients,
    make_http_client,
    resolve_models,
)
from ocactors.actors.models.anthropic_client import AnthropicClient
from ocactors.actors.models.openai_client import OpenAIChatClient
from tests._models_helpers import CONVERSATION, SECRET, closed_port, headers

TOML = """
[models]
model = "file-model"
base_url = "https://llm.example.com/v1"
api_key_env = "EXAMPLE_KEY"
timeout_s = 120

[roles.planner]
model = "file-planner"
timeout_s = 900
stream = false

[prices."file-model"]
input_per_mtok = 1.5
output_per_mtok = 6.0

[mission]  # someone else's table: ignored here
verify = "pytest"
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / ".opencode").mkdir()
    (tmp_path / ".opencode" / "ocactors.toml").write_text(TOML)
    return tmp_path


def nowhere() -> str:
    """An Ollama URL nobody answers on."""
    return f"http://127.0.0.1:{closed_port()}"


def test_the_file_alone(workspace: Path) -> None:
    config = resolve_models(workspace, None, {"EXAMPLE_KEY": SECRET}, ollama_url=nowhere())
    worker, planner = config.for_role("worker:t3"), config.for_role("planner")
    assert (worker.model, worker.base_url, worker.provider) == (
        "file-model",
        "https://llm.example.com/v1",
        "openai",
    )
    assert worker.api_key == SECRET and worker.timeout_s == 120 and worker.stream
    assert (planner.model, planner.timeout_s, planner.stream) == ("file-planner", 900, False)
    assert planner.base_url == worker.base_url
    assert worker.price is not None and worker.price.input_per_mtok == 1.5
    assert config.price_table() == {"file-model": (1.5, 6.0)}


def test_environment_beats_the_file_and_flags_beat_both(workspace: Path) -> None:
    env = {"OCACTORS_MODEL": "env-model", "OCACTORS_BASE_URL": "http://env.example/v1"}
    by_env = resolve_models(workspace, None, env)
    assert {r.model for r in by_env.roles.values()} == {"env-model"}
    assert by_env.for_role("planner").timeout_s == 900  # unset fields still come from the file
    flags = ModelFlags(model="flag-model", api_key="flag-key")
    by_flags = resolve_models(workspace, flags, env)
    reviewer = by_flags.for_role("reviewer")
    assert (reviewer.model, reviewer.base_url, reviewer.api_key) == (
        "flag-model",
        "http://env.example/v1",
        "flag-key",
    )


def test_vendor_variables_sit_between_ocactors_variables_and_the_file(workspace: Path) -> None:
    env = {"OPENAI_BASE_URL": "http://vendor.example/v1", "OPENAI_API_KEY": "vendor-key"}
    worker = resolve_models(workspace, None, env).for_role("worker")
    assert (worker.base_url, worker.api_key) == ("http://vendor.example/v1", "vendor-key")
    env["OCACTORS_BASE_URL"] = "http://mine.example/v1"
    assert (
        resolve_models(workspace, None, env).for_role("worker").base_url.startswith("http://mine")
    )


def test_a_key_the_file_names_beats_an_ambient_vendor_key(workspace: Path) -> None:
    env = {"OPENAI_API_KEY": "ambient", "EXAMPLE_KEY": SECRET}
    assert resolve_models(workspace, None, env).for_role("worker").api_key == SECRET
    env["OCACTORS_API_KEY"] = "explicit"
    assert resolve_models(workspace, None, env).for_role("worker").api_key == "explicit"


def test_an_openai_key_alone_means_openai(tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": SECRET, "OCACTORS_MODEL": "gpt-4.1-mini"}
    worker = resolve_models(tmp_path, None, env).for_role("worker")
    assert (worker.provider, worker.base_url) == ("openai", "https://api.openai.com/v1")


def test_an_anthropic_key_alone_means_anthropic(tmp_path: Path) -> None:
    env = {"ANTHROPIC_API_KEY": SECRET, "OCACTORS_MODEL": "claude-sonnet-4-5"}
    worker = resolve_models(tmp_path, None, env).for_role("worker")
    assert (worker.provider, worker.base_url) == ("anthropic", "https://api.anthropic.com")
    assert worker.api_key == SECRET and worker.context_window == 200_000


def test_provider_is_inferred_from_the_base_url(tmp_path: Path) -> None:
    flags = ModelFlags(model="claude-x", base_url="https://api.anthropic.com/v1", api_key="k")
    assert resolve_models(tmp_path, flags, {}).for_role("worker").provider == "anthropic"
    flags = ModelFlags(model="claude-x", base_url="https://openrouter.ai/api/v1", api_key="k")
    assert resolve_models(tmp_path, flags, {}).for_role("worker").provider == "openai"


def test_nothing_configured_and_no_ollama(tmp_path: Path) -> None:
    url = nowhere()
    with pytest.raises(ConfigError) as caught:
        resolve_models(tmp_path, None, {}, ollama_url=url)
    assert str(caught.value) == (
        "no model configured: set OCACTORS_MODEL and OCACTORS_BASE_URL (and OCACTORS_API_KEY), "
        f"or start Ollama on {url.removeprefix('http://')}"
    )


def test_a_base_url_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^no model configured for the planner: set OCACTORS_MODEL"
    ):
        resolve_models(tmp_path, None, {"OCACTORS_BASE_URL": "http://h/v1"})


def test_a_model_without_an_endpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no endpoint for model 'm': set OCACTORS_BASE_URL"):
        resolve_models(tmp_path, ModelFlags(model="m"), {}, ollama_url=nowhere())


def test_ollama_is_found_and_its_first_model_used(tmp_path: Path) -> None:
    with ScriptedModelServer({"*": [Turn("hello from ollama")]}) as ollama:
        config = resolve_models(tmp_path, None, {}, ollama_url=ollama.root_url)
        worker = config.for_role("worker")
        assert (worker.model, worker.base_url, worker.source) == (
            "scripted",
            ollama.base_url,
            "ollama",
        )
        with make_http_client() as http:
            client = build_client(worker, http, LimiterRegistry())
            reply = client.complete(CONVERSATION, [], headers=headers())
        assert reply.message.content == "hello from ollama"


class EmptyOllama(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"models": []}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def empty_ollama() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EmptyOllama)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_ollama_without_models(tmp_path: Path, empty_ollama: str) -> None:
    with pytest.raises(ConfigError, match=r"has no models: run `ollama pull <model>`"):
        resolve_models(tmp_path, None, {}, ollama_url=empty_ollama)
    named = resolve_models(tmp_path, ModelFlags(model="llama3"), {}, ollama_url=empty_ollama)
    assert named.for_role("worker").model == "llama3"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[models\nmodel=", r"ocactors\.toml: "),
        ("[models]\nmodle = 'x'", r"unknown field `modle`"),
        ("[roles.coder]\nmodel = 'x'", r"unknown role \[roles\.coder\]"),
        ("[models]\nprovider = 'gemini'", r"Invalid enum value 'gemini' - at `\$.models.provider`"),
    ],
)
def test_a_broken_file_is_named_in_one_line(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / ".opencode").mkdir()
    (tmp_path / ".opencode" / "ocactors.toml").write_text(text)
    with pytest.raises(ConfigError, match=reason) as caught:
        resolve_models(tmp_path, None, {})
    assert "\n" not in str(caught.value)


def test_the_key_stays_out_of_reprs_and_errors(tmp_path: Path) -> None:
    flags = ModelFlags(model="m", base_url="http://h/v1", api_key=SECRET)
    config = resolve_models(tmp_path, flags, {"OCACTORS_PROVIDER": "openai"})
    texts = [repr(flags), repr(config), config.for_role("worker").describe()]
    assert all(SECRET not in text for text in texts)
    with pytest.raises(ConfigError) as caught:
        resolve_models(tmp_path, flags, {"OCACTORS_PROVIDER": SECRET})
    assert "OCACTORS_PROVIDER" in str(caught.value)


def test_clients_share_a_limiter_per_endpoint_and_model(workspace: Path) -> None:
    env = {"OCACTORS_BASE_URL": "http://127.0.0.1:9/v1", "OCACTORS_MODEL": "same"}
    registry = LimiterRegistry()
    with make_http_client() as http:
        clients = build_clients(resolve_models(workspace, None, env), http, registry)
        assert set(clients) == {"planner", "worker", "reviewer"}
        limiters = {c.limiter for c in clients.values() if isinstance(c, RetryingClient)}
        (limiter,) = limiters
        assert limiter is not None and limiter.max_concurrency == 50  # loopback default
        assert isinstance(clients["worker"], RetryingClient)
        assert isinstance(clients["worker"].inner, OpenAIChatClient)
        assert http._transport._direct._pool._max_connections == 100  # type: ignore[attr-defined]


def test_anthropic_roles_get_the_anthropic_client(tmp_path: Path) -> None:
    env = {"ANTHROPIC_API_KEY": SECRET, "OCACTORS_MODEL": "claude-x"}
    (tmp_path / ".opencode").mkdir()
    (tmp_path / ".opencode" / "ocactors.toml").write_text("[models]\nmax_concurrency = 3\n")
    config = resolve_models(tmp_path, None, env).for_role("worker")
    with httpx.Client() as http:
        client = build_client(config, http, LimiterRegistry())
    assert isinstance(client, RetryingClient) and isinstance(client.inner, AnthropicClient)
    assert client.limiter is not None and client.limiter.max_concurrency == 3


def test_bounds_and_waits_come_from_the_file_into_the_client(tmp_path: Path) -> None:
    (tmp_path / ".opencode").mkdir()
    (tmp_path / ".opencode" / "ocactors.toml").write_text(
        "[models]\nturn_deadline_s = 600\nmax_response_bytes = 1000000\nmax_retry_wait_s = 60\n"
        "[roles.planner]\nturn_deadline_s = 3600\n"
    )
    env = {"OCACTORS_MODEL": "m", "OCACTORS_BASE_URL": "http://127.0.0.1:9/v1"}
    config = resolve_models(tmp_path, None, env)
    with make_http_client(env={}) as http:
        clients = build_clients(config, http, LimiterRegistry())
    worker, planner = clients["worker"], clients["planner"]
    assert isinstance(worker, RetryingClient) and isinstance(planner, RetryingClient)
    assert (worker.limits.deadline_s, worker.limits.max_bytes) == (600, 1_000_000)
    assert worker.max_wait == 60 and planner.limits.deadline_s == 3600
    default = resolve_models(tmp_path.parent, None, env).for_role("worker")
    assert (default.turn_deadline_s, default.max_response_bytes) == (1200, 64 * 1024 * 1024)
    assert default.max_retry_wait_s == 300


def test_each_setting_remembers_where_it_came_from(workspace: Path) -> None:
    env = {"OCACTORS_MODEL": "env-model", "EXAMPLE_KEY": SECRET}
    flags = ModelFlags(base_url="http://flag.example/v1")
    planner = resolve_models(workspace, flags, env).for_role("planner")
    assert planner.origin("model") == "OCACTORS_MODEL"
    assert planner.origin("base_url") == "--base-url"
    assert planner.origin("api_key") == "EXAMPLE_KEY"
    assert (
        planner.origin("timeout_s") == "timeout_s under [roles.planner] in .opencode/ocactors.toml"
    )
    worker = resolve_models(workspace, None, {"OPENAI_API_KEY": "k"}).for_role("worker")
    assert worker.origin("base_url") == "base_url under [models] in .opencode/ocactors.toml"
    assert worker.origin("model") == "model under [models] in .opencode/ocactors.toml"
    vendor = resolve_models(workspace, None, {"OPENAI_BASE_URL": "http://v/v1"}).for_role("worker")
    assert vendor.origin("base_url") == "OPENAI_BASE_URL"
    assert resolve_models(workspace, None, {}).for_role("worker").origin("api_key") == (
        "OCACTORS_API_KEY"  # nothing gave one: the setting to use
    )


def test_an_api_key_env_naming_an_unset_variable_is_noted(workspace: Path) -> None:
    ambient = resolve_models(workspace, None, {"OPENAI_API_KEY": "ambient"}).for_role("worker")
    assert ambient.missing_key_env == "EXAMPLE_KEY"
    assert ambient.origin("api_key_env") == "api_key_env under [models] in .opencode/ocactors.toml"
    given = resolve_models(workspace, None, {"EXAMPLE_KEY": SECRET}).for_role("worker")
    assert given.missing_key_env is None
    explicit = resolve_models(workspace, None, {"OCACTORS_API_KEY": "k"}).for_role("worker")
    assert explicit.missing_key_env is None  # a key above the file makes it moot
