"""`--model PROVIDER/MODEL` through OpenCode's configuration files, in a private HOME."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocactors.actors.models import (
    ConfigError,
    ModelFlags,
    RoleConfig,
    ScriptedModelServer,
    resolve_models,
)
from ocactors.actors.models.opencode_config import OpenCodeConfig, strip_jsonc
from tests._mission_helpers import CHECK, textstats_playbook
from tests._opencode_helpers import isolated_env, run

SECRET = "sk-opencode-secret-0123456789"


def resolve(
    workspace: Path, model: str, env: dict[str, str], base_url: str | None = None
) -> RoleConfig:
    flags = ModelFlags(model=model, base_url=base_url)
    return resolve_models(workspace, flags, env).for_role("worker")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "ws").mkdir()
    return tmp_path / "ws"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_jsonc_comments_and_trailing_commas_go_but_strings_keep_them() -> None:
    text = '{ // a comment\n "a": "http://x//y /* no */", /* block\n */ "b": [1, 2,], }'
    assert json.loads(strip_jsonc(text)) == {"a": "http://x//y /* no */", "b": [1, 2]}


def test_a_project_jsonc_provider_with_env_and_file_substitutions(
    workspace: Path, home: Path
) -> None:
    write(workspace / "key.txt", f"  {SECRET}\n")
    write(
        workspace / "opencode.jsonc",
        """{
          // a local gateway
          "provider": {
            "gw": {
              "npm": "@ai-sdk/openai-compatible",
              "options": {"baseURL": "{env:GW_URL}/v1/", "apiKey": "{file:key.txt}"},
              "models": {"fast": {"id": "gw-fast-2", "limit": {"context": 32000, "output": 4096}}},
            },
          },
        }""",
    )
    env = {"HOME": str(home), "GW_URL": "http://127.0.0.1:9"}
    role = resolve(workspace, "gw/fast", env)
    assert (role.provider, role.model, role.base_url) == (
        "openai",
        "gw-fast-2",
        "http://127.0.0.1:9/v1",
    )
    assert role.api_key == SECRET and (role.context_window, role.max_tokens) == (32000, 4096)
    assert (
        role.source
        == f"OpenCode config {workspace / 'opencode.jsonc'}: provider gw, key from options.apiKey"
    )
    assert SECRET not in role.describe() and SECRET not in repr(role)


def test_the_global_config_in_home_is_read_and_the_project_wins_key_by_key(
    workspace: Path, home: Path
) -> None:
    write(
        home / ".config" / "opencode" / "opencode.json",
        json.dumps(
            {"provider": {"gw": {"options": {"baseURL": "http://global/v1", "apiKey": SECRET}}}}
        ),
    )
    env = {"HOME": str(home)}
    assert resolve(workspace, "gw/m", env).base_url == "http://global/v1"
    write(
        workspace / ".opencode" / "opencode.json",
        '{"provider": {"gw": {"options": {"baseURL": "http://project/v1"}}}}',
    )
    role = resolve(workspace, "gw/m", env)
    assert (role.base_url, role.api_key) == ("http://project/v1", SECRET)


def test_xdg_config_home_is_where_the_global_config_lives_when_set(
    workspace: Path, home: Path, tmp_path: Path
) -> None:
    write(
        home / ".config" / "opencode" / "opencode.json",
        '{"provider": {"gw": {"options": {"baseURL": "http://home/v1"}}}}',
    )
    write(
        tmp_path / "xdg" / "opencode" / "opencode.json",
        '{"provider": {"gw": {"options": {"baseURL": "http://xdg/v1"}}}}',
    )
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert resolve(workspace, "gw/m", env).base_url == "http://xdg/v1"


def test_the_file_opencode_config_names_sits_between_project_and_global(
    workspace: Path, home: Path, tmp_path: Path
) -> None:
    named = write(
        tmp_path / "team.json", '{"provider": {"gw": {"options": {"baseURL": "http://team/v1"}}}}'
    )
    write(
        home / ".config" / "opencode" / "opencode.json",
        '{"provider": {"gw": {"options": {"baseURL": "http://home/v1"}}}}',
    )
    env = {"HOME": str(home), "OPENCODE_CONFIG": str(named)}
    assert resolve(workspace, "gw/m", env).base_url == "http://team/v1"
    write(
        workspace / "opencode.json",
        '{"provider": {"gw": {"options": {"baseURL": "http://ws/v1"}}}}',
    )
    assert resolve(workspace, "gw/m", env).base_url == "http://ws/v1"


def test_a_parent_folder_up_to_the_git_root_counts_and_beyond_it_not(tmp_path: Path) -> None:
    repo = tmp_path / "outside" / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "sub").mkdir()
    write(
        repo / "opencode.json", '{"provider": {"gw": {"options": {"baseURL": "http://repo/v1"}}}}'
    )
    write(
        tmp_path / "outside" / "opencode.json",
        '{"provider": {"far": {"options": {"baseURL": "http://far/v1"}}}}',
    )
    assert resolve(repo / "sub", "gw/m", {}).base_url == "http://repo/v1"
    with pytest.raises(ConfigError, match="unknown provider 'far'"):
        resolve(repo / "sub", "far/m", {})


def test_outside_git_only_the_workspace_itself_counts(tmp_path: Path) -> None:
    (tmp_path / "plain" / "ws").mkdir(parents=True)
    write(
        tmp_path / "plain" / "opencode.json",
        '{"provider": {"up": {"options": {"baseURL": "http://up/v1"}}}}',
    )
    with pytest.raises(ConfigError, match="unknown provider 'up'"):
        resolve(tmp_path / "plain" / "ws", "up/m", {})


def test_built_in_providers_take_their_usual_variable_and_url(workspace: Path) -> None:
    role = resolve(
        workspace, "openrouter/anthropic/claude-sonnet-4", {"OPENROUTER_API_KEY": SECRET}
    )
    assert (role.model, role.base_url, role.api_key) == (
        "anthropic/claude-sonnet-4",
        "https://openrouter.ai/api/v1",
        SECRET,
    )
    assert (
        role.source
        == "OpenCode's built-in providers: provider openrouter, key from OPENROUTER_API_KEY"
    )
    anthropic = resolve(workspace, "anthropic/claude-sonnet-4-5", {"ANTHROPIC_API_KEY": SECRET})
    assert (anthropic.provider, anthropic.base_url) == ("anthropic", "https://api.anthropic.com")


def test_a_built_in_provider_without_its_key_is_one_line_naming_the_variable(
    workspace: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(workspace, "deepseek/deepseek-chat", {})
    assert str(caught.value) == (
        "no API key for deepseek: set DEEPSEEK_API_KEY (or options.apiKey under "
        "provider.deepseek in opencode.json)"
    )


def test_a_key_given_to_ocactors_wins_over_opencodes(workspace: Path) -> None:
    role = resolve(
        workspace, "groq/llama", {"GROQ_API_KEY": "from-groq", "OCACTORS_API_KEY": SECRET}
    )
    assert role.api_key == SECRET


def test_an_unknown_provider_says_what_to_do(workspace: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(workspace, "nowhere/model-x", {})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("unknown provider 'nowhere' in model 'nowhere/model-x'")
    assert "declare it in opencode.json" in message and "--base-url" in message


def test_a_provider_package_ocactors_cannot_speak_is_refused(workspace: Path) -> None:
    write(
        workspace / "opencode.json",
        '{"provider": {"g": {"npm": "@ai-sdk/google", "options": {"baseURL": "http://g"}}}}',
    )
    with pytest.raises(ConfigError, match="uses @ai-sdk/google, which ocactors cannot speak"):
        resolve(workspace, "g/gemini", {})


def test_with_a_base_url_a_slash_is_part_of_the_model_name(workspace: Path) -> None:
    role = resolve(workspace, "hf.co/org/model:q4", {}, base_url="http://127.0.0.1:11434/v1")
    assert (role.model, role.base_url) == ("hf.co/org/model:q4", "http://127.0.0.1:11434/v1")


def test_per_role_models_in_ocactors_toml_resolve_through_opencode(workspace: Path) -> None:
    write(
        workspace / "opencode.json",
        '{"provider": {"gw": {"options": {"baseURL": "http://gw/v1"}}}}',
    )
    write(
        workspace / ".opencode" / "ocactors.toml",
        '[models]\nmodel = "gw/small"\n[roles.planner]\nmodel = "gw/large"\n',
    )
    config = resolve_models(workspace, None, {})
    assert (
        config.for_role("planner").model == "large" and config.for_role("worker").model == "small"
    )
    assert config.for_role("reviewer").source.startswith("OpenCode config")


def test_opencodes_own_model_is_read(workspace: Path, home: Path) -> None:
    write(home / ".config" / "opencode" / "opencode.json", '{"model": "anthropic/claude-x"}')
    assert OpenCodeConfig(workspace, {"HOME": str(home)}).default_model() == "anthropic/claude-x"


# --- through the command line, with a real mission ---------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(textstats_playbook().script()) as running:
        yield running


def test_a_mission_on_an_opencode_model_says_so_and_keeps_the_key_out_of_the_log(
    workspace: Path, home: Path, server: ScriptedModelServer
) -> None:
    write(home / ".config" / "opencode" / "key", SECRET)
    config = {
        "provider": {
            "lab": {
                "npm": "@ai-sdk/openai-compatible",
                "options": {"baseURL": server.base_url, "apiKey": "{file:key}"},
            }
        }
    }
    write(home / ".config" / "opencode" / "opencode.json", json.dumps(config))
    env = isolated_env(home, workspace)
    done = run(
        "task",
        "build textstats",
        "--model",
        "lab/scripted",
        "--verify",
        CHECK,
        env=env,
        cwd=workspace,
    )
    assert done.returncode == 0, done.stderr
    banner = [line for line in done.stderr.splitlines() if line.startswith("model ")]
    assert len(banner) == 3 and all(
        "from OpenCode config" in line and "provider lab" in line for line in banner
    )
    assert any(r.headers.get("authorization") == f"Bearer {SECRET}" for r in server.requests)
    for path in (workspace / ".opencode").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in done.stdout + done.stderr


def test_an_unknown_provider_on_the_command_line_is_exit_2_one_line(
    workspace: Path, home: Path
) -> None:
    done = run(
        "task", "x", "--model", "nowhere/m", env=isolated_env(home, workspace), cwd=workspace
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("ocactors: error: unknown provider 'nowhere'")
    assert not (workspace / ".opencode").exists()
