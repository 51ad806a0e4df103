"""Proxies: loopback models never go through one; other hosts go as curl would send them.

Real proxies run on loopback in threads (an HTTP forward proxy and a SOCKS5 server); the
"remote" model host ``model.test`` is never resolved here: only the proxy sees the name,
and it relays to the scripted model server.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ocactors.actors.models import (
    BadRequest,
    OpenAIChatClient,
    ScriptedModelServer,
    TransportError,
    Turn,
    make_http_client,
)
from ocactors.actors.models.factory import proxy_for
from ocactors.events import list_missions, read_events
from ocactors.events.catalogue import event_type
from tests._mission_helpers import CHECK, textstats_playbook
from tests._models_helpers import CONVERSATION, closed_port, headers

# --- which route, as curl decides it ---------------------------------------------------

EVERY_PROXY = {
    "HTTP_PROXY": "http://web-proxy:3128",
    "HTTPS_PROXY": "http://secure-proxy:3128",
    "ALL_PROXY": "socks5://socks-proxy:1080",
}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:11434/v1",
        "http://127.8.9.10:8000/v1",
        "http://localhost:1234/v1",
        "http://ollama.localhost/v1",
        "http://[::1]:8080/v1",
        "http://169.254.1.2:8000/v1",
        "http://[fe80::1]:8000/v1",
    ],
)
def test_loopback_and_link_local_are_always_direct(url: str) -> None:
    assert proxy_for(httpx.URL(url), EVERY_PROXY) is None


@pytest.mark.parametrize(
    ("url", "env", "route"),
    [
        ("https://api.openai.com/v1", EVERY_PROXY, ("HTTPS_PROXY", "http://secure-proxy:3128")),
        ("http://10.0.0.5:8000/v1", EVERY_PROXY, ("HTTP_PROXY", "http://web-proxy:3128")),
        ("https://x.ai/v1", {"ALL_PROXY": "socks5h://s:1080"}, ("ALL_PROXY", "socks5h://s:1080")),
        (
            "https://x.ai/v1",
            {"https_proxy": "a:1", "HTTPS_PROXY": "b:2"},
            ("https_proxy", "http://a:1"),
        ),
        ("https://x.ai/v1", {}, None),
    ],
)
def test_the_proxy_variables(url: str, env: dict[str, str], route: tuple[str, str] | None) -> None:
    assert proxy_for(httpx.URL(url), env) == route


@pytest.mark.parametrize(
    ("host", "no_proxy", "direct"),
    [
        ("api.example.com", "example.com", True),
        ("example.com", "example.com", True),
        ("badexample.com", "example.com", False),
        ("api.example.com", ".example.com", True),
        ("example.com", ".example.com", True),
        ("api.openai.com", "*", True),
        ("api.openai.com", "localhost, example.com ,.internal", False),
        ("llm.internal", "localhost, example.com ,.internal", True),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("11.1.2.3", "10.0.0.0/8", False),
        ("192.168.1.7", "192.168.1.7", True),
        ("[2001:db8::5]", "2001:db8::/32", True),
        ("API.Example.COM", "example.com", True),
    ],
)
def test_no_proxy_as_curl_reads_it(host: str, no_proxy: str, direct: bool) -> None:
    env = {**EVERY_PROXY, "NO_PROXY": no_proxy}
    assert (proxy_for(httpx.URL(f"http://{host}:8000/v1"), env) is None) == direct


# --- real proxies on loopback ------------------------------------------------------------


def relay(one: socket.socket, other: socket.socket) -> None:
    """Copy bytes both ways until either side closes (each read waits at most 10 s)."""

    def pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    for sock in (one, other):
        sock.settimeout(10)
    back = threading.Thread(target=pump, args=(other, one))
    back.start()
    pump(one, other)
    back.join(timeout=10)


@contextmanager
def proxy_server(
    serve: Callable[[socket.socket], None],
) -> Iterator[str]:
    """A TCP server on loopback handling each connection with ``serve``: its address."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def http_forwarder(target: int, seen: list[str]) -> Callable[[socket.socket], None]:
    """A forward proxy: reads an absolute-form request, sends it on in origin form."""

    def serve(conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                head += conn.recv(65536) or b"\r\n\r\n"
            line, _, rest = head.partition(b"\r\n")
            method, url, version = line.split(b" ")
            seen.append(url.decode())
            path = b"/" + url.split(b"/", 3)[3]
            with socket.create_connection(("127.0.0.1", target), timeout=10) as upstream:
                upstream.sendall(b" ".join((method, path, version)) + b"\r\n" + rest)
                relay(conn, upstream)

    return serve


def socks5(target: int, seen: list[str]) -> Callable[[socket.socket], None]:
    """A SOCKS5 server (no auth, CONNECT by name) relaying every connection to ``target``."""

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            _, methods = conn.recv(2)
            conn.recv(methods)
            conn.sendall(b"\x05\x00")
            _, command, _, kind = conn.recv(4)
            assert command == 1 and kind == 3  # CONNECT to a domain name
            name = conn.recv(conn.recv(1)[0]).decode()
            port = int.from_bytes(conn.recv(2), "big")
            seen.append(f"{name}:{port}")
            conn.sendall(b"\x05\x00\x00\x01" + bytes(6))
            with socket.create_connection(("127.0.0.1", target), timeout=10) as upstream:
                relay(conn, upstream)

    return serve


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer({"*": [Turn("hello through the proxy")]}) as server:
        yield server


def ask(base_url: str, env: dict[str, str]) -> str:
    with make_http_client(env=env) as http:
        client = OpenAIChatClient(http, base_url=base_url, api_key=None, model="m", timeout=5)
        return client.complete(CONVERSATION, [], headers=headers()).message.content


def dead_proxies() -> dict[str, str]:
    dead = f"127.0.0.1:{closed_port()}"
    return {
        "HTTP_PROXY": f"http://{dead}",
        "HTTPS_PROXY": f"http://{dead}",
        "ALL_PROXY": f"socks5://{dead}",
        "http_proxy": f"http://{dead}",
        "https_proxy": f"http://{dead}",
        "all_proxy": f"socks5://{dead}",
    }


def test_a_loopback_model_ignores_every_proxy(model: ScriptedModelServer) -> None:
    assert ask(model.base_url, dead_proxies()) == "hello through the proxy"
    localhost = model.base_url.replace("127.0.0.1", "localhost")
    assert ask(localhost, dead_proxies()) == "hello through the proxy"


def test_a_remote_model_goes_through_http_proxy(model: ScriptedModelServer) -> None:
    seen: list[str] = []
    with proxy_server(http_forwarder(model.port, seen)) as address:
        env = {"HTTP_PROXY": f"http://{address}", "ALL_PROXY": "socks5://127.0.0.1:9"}
        url = f"http://model.test:{model.port}/v1"
        assert ask(url, env) == "hello through the proxy"
    assert seen == [f"{url}/chat/completions"]


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_a_remote_model_goes_through_a_socks_proxy(model: ScriptedModelServer, scheme: str) -> None:
    seen: list[str] = []
    with proxy_server(socks5(model.port, seen)) as address:
        url = f"http://model.test:{model.port}/v1"
        assert ask(url, {"ALL_PROXY": f"{scheme}://{address}"}) == "hello through the proxy"
    assert seen == [f"model.test:{model.port}"]


def test_no_proxy_sends_a_host_direct(model: ScriptedModelServer) -> None:
    env = {**dead_proxies(), "NO_PROXY": "127.0.0.0/8"}
    assert ask(model.base_url, env) == "hello through the proxy"


def test_a_dead_proxy_is_named_without_its_password() -> None:
    dead = f"http://user:hunter2@127.0.0.1:{closed_port()}"
    with pytest.raises(TransportError) as caught:
        ask("https://api.example.com/v1", {"HTTPS_PROXY": dead})
    message = str(caught.value)
    assert "via the proxy http://127.0.0.1:" in message and "from HTTPS_PROXY" in message
    assert "hunter2" not in message


def test_an_unusable_proxy_fails_in_one_line(model: ScriptedModelServer) -> None:
    env = {"ALL_PROXY": "socks4://127.0.0.1:1080"}
    with pytest.raises(BadRequest) as caught:
        ask("https://api.example.com/v1", env)
    assert "ALL_PROXY=socks4://127.0.0.1:1080 cannot be used" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert ask(model.base_url, env) == "hello through the proxy"  # unused: no harm


# --- the commands, with every proxy variable pointing at a dead port ------------------


def command_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.upper().startswith(("OCACTORS_", "NO_"))}
    keep = {k: v for k, v in keep.items() if "proxy" not in k.lower()}
    return {**keep, "HOME": str(tmp_path), **dead_proxies(), **settings}


def test_the_demo_seals_behind_dead_proxies(tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "ocactors.cli", "demo", "--dir", str(workspace), "--fast"],
        capture_output=True,
        text=True,
        timeout=120,
        env=command_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert "SEALED" in done.stderr


def test_a_task_against_a_loopback_model_seals_behind_dead_proxies(tmp_path: Path) -> None:
    with ScriptedModelServer(textstats_playbook().script()) as server:
        env = command_env(tmp_path, OCACTORS_MODEL="scripted", OCACTORS_BASE_URL=server.base_url)
        goal = ["task", "build textstats", "-C", str(tmp_path), "--verify", CHECK]
        done = subprocess.run(
            [sys.executable, "-m", "ocactors.cli", *goal],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    assert done.returncode == 0, done.stderr
    log = list_missions(tmp_path)[0].events
    assert event_type(list(read_events(log))[-1]) == "mission.sealed"
