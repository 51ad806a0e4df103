"""web_fetch and web_search against a real HTTP server on 127.0.0.1 (no other network)."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ocactors.tools import Toolbox, ToolContext, WebConfig, Workspace, planner_tools

PAGE = b"""<html><head><style>body { color: red }</style><script>track()</script></head>
<body><h1>Title</h1><p>Hello &amp; bye</p><ul><li>one</li><li>two</li></ul>
<noscript>enable js</noscript></body></html>"""
ROUTES: dict[str, tuple[int, str, bytes]] = {
    "/page": (200, "text/html; charset=utf-8", PAGE),
    "/plain": (200, "text/plain", b"  plain <b>text</b> stays\n"),
    "/latin": (200, "text/plain; charset=iso-8859-1", b"caf\xe9"),
    "/big": (200, "text/plain", b"a" * 1_000_000),
    "/pdf": (200, "application/pdf", b"%PDF-1.7\n\x00\x01\x02binary"),
    "/error": (500, "text/plain", b"boom"),
    "/search-broken": (200, "application/json", b"<html>not json</html>"),
    "/search-empty": (200, "application/json", b'{"results": []}'),
    "/search-odd": (200, "application/json", b'{"results": {"title": "x"}}'),
    "/search-down": (503, "application/json", b'{"results": [{"title": "stale"}]}'),
}
ENDLESS_CAP = 100_000_000


class Server(ThreadingHTTPServer):
    """Counts what it is asked and how much of the endless body it got to send."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[str] = []
        self.sent = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        path = urlsplit(self.path).path
        if path == "/search":
            self._search()
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/page")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/endless":
            self._endless()
        else:
            self._send(*ROUTES.get(path, (404, "text/plain", b"not here")))

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _search(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        results = [
            {"title": f"T{i}", "url": f"http://u{i}", "content": f"snippet  {i}\n{query['q'][0]}"}
            for i in range(12)
        ]
        self._send(200, "application/json", json.dumps({"results": results}).encode())

    def _endless(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        chunk = b"z" * 65536
        try:
            while self.server.sent < ENDLESS_CAP:
                self.wfile.write(chunk)
                self.server.sent += len(chunk)
        except OSError:  # the client hung up, as it should
            return

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def server() -> Iterator[Server]:
    server = Server()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False) as client:
        yield client


def box(tmp_path: Path, http: httpx.Client | None, **web: Any) -> Toolbox:
    config = WebConfig(**{"fetch": True, **web})
    ctx = ToolContext(Workspace(tmp_path), web=config, http=http)
    return Toolbox(planner_tools(config), ctx)


def call(toolbox: Toolbox, name: str, **args: Any) -> tuple[str, bool]:
    result = toolbox.call(name, json.dumps(args))
    return result.output, result.is_error


def test_html_is_reduced_to_readable_text(
    tmp_path: Path, server: Server, http: httpx.Client
) -> None:
    text, is_error = call(box(tmp_path, http), "web_fetch", url=f"{server.url}/page")
    assert not is_error
    assert text.splitlines() == ["Title", "Hello & bye", "one", "two"]


def test_plain_text_passes_through_in_its_charset(
    tmp_path: Path, server: Server, http: httpx.Client
) -> None:
    toolbox = box(tmp_path, http)
    assert call(toolbox, "web_fetch", url=f"{server.url}/plain") == (
        "  plain <b>text</b> stays\n",
        False,
    )
    assert call(toolbox, "web_fetch", url=f"{server.url}/latin") == ("café", False)


def test_a_fetched_page_is_cached_under_the_cache_dir(
    tmp_path: Path, server: Server, http: httpx.Client
) -> None:
    cache = tmp_path / ".opencode" / "docs"
    toolbox = box(tmp_path, http, cache_dir=cache)
    url = f"{server.url}/page"
    first = call(toolbox, "web_fetch", url=url)
    second = call(toolbox, "web_fetch", url=url)
    assert first == second and not first[1]
    assert server.requests == ["/page"]
    cached = cache / f"{hashlib.sha256(url.encode()).hexdigest()}.txt"
    assert cached.read_text() == first[0]
    assert call(toolbox, "read_file", path=f".opencode/docs/{cached.name}")[1]  # private


def test_without_a_cache_every_fetch_asks_the_server(
    tmp_path: Path, server: Server, http: httpx.Client
) -> None:
    toolbox = box(tmp_path, http)
    call(toolbox, "web_fetch", url=f"{server.url}/plain")
    call(toolbox, "web_fetch", url=f"{server.url}/plain")
    assert server.requests == ["/plain", "/plain"]


def test_redirects_are_followed(tmp_path: Path, server: Server, http: httpx.Client) -> None:
    text, is_error = call(box(tmp_path, http), "web_fetch", url=f"{server.url}/redirect")
    assert not is_error and text.startswith("Title")
    assert server.requests == ["/redirect", "/page"]


@pytest.mark.parametrize(("path", "status"), [("/nowhere", 404), ("/error", 500)])
def test_http_errors_are_tool_errors_and_not_cached(
    tmp_path: Path, server: Server, http: httpx.Client, path: str, status: int
) -> None:
    cache = tmp_path / "cache"
    output, is_error = call(
        box(tmp_path, http, cache_dir=cache), "web_fetch", url=server.url + path
    )
    assert is_error and output == f"error: {server.url}{path} answered HTTP {status}"
    assert not cache.exists() or not list(cache.iterdir())


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "127.0.0.1/page", "javascript:alert(1)"]
)
def test_only_http_urls_are_fetched(
    tmp_path: Path, server: Server, http: httpx.Client, url: str
) -> None:
    output, is_error = call(box(tmp_path, http), "web_fetch", url=url)
    assert is_error and "url must start with http:// or https://" in output
    assert server.requests == []


def test_the_body_is_capped_at_max_bytes(
    tmp_path: Path, server: Server, http: httpx.Client
) -> None:
    text, is_error = call(box(tmp_path, http, max_bytes=1000), "web_fetch", url=f"{server.url}/big")
    assert not is_error and text == "a" * 1000


def test_an_endless_body_is_not_read_to_its_end(
    tmp_path: Path, server: Server, http: httpx.Client
) -> None:
    toolbox = box(tmp_path, http, max_bytes=100_000)
    text, is_error = call(toolbox, "web_fetch", url=f"{server.url}/endless")
    assert not is_error and text.startswith("zzz") and "characters elided" in text
    assert server.sent < ENDLESS_CAP / 4  # the client hung up long before the server's cap


def test_a_binary_body_is_refused(tmp_path: Path, server: Server, http: httpx.Client) -> None:
    output, is_error = call(box(tmp_path, http), "web_fetch", url=f"{server.url}/pdf")
    assert is_error and "is binary (application/pdf)" in output


def test_an_unreachable_server_is_a_tool_error(tmp_path: Path, http: httpx.Client) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    output, is_error = call(box(tmp_path, http), "web_fetch", url=f"http://127.0.0.1:{port}/")
    assert is_error and "could not fetch" in output and "ConnectError" in output


def test_without_an_http_client_the_web_tools_say_so(tmp_path: Path, server: Server) -> None:
    toolbox = box(tmp_path, None, search_url=f"{server.url}/search")
    for name, args in (
        ("web_fetch", {"url": f"{server.url}/page"}),
        ("web_search", {"query": "q"}),
    ):
        output, is_error = call(toolbox, name, **args)
        assert is_error and "not available" in output
    assert server.requests == []


def test_search_results_are_formatted_and_capped(
    tmp_path: Path, server: Server, http: httpx.Client
) -> None:
    toolbox = box(tmp_path, http, search_url=f"{server.url}/search")
    output, is_error = call(toolbox, "web_search", query="pykka actors")
    assert not is_error
    lines = output.splitlines()
    assert lines[:3] == ["- T0", "  http://u0", "  snippet 0 pykka actors"]
    assert len(lines) == 8 * 3 and lines[-3] == "- T7"
    asked = parse_qs(urlsplit(server.requests[0]).query)
    assert asked == {"q": ["pykka actors"], "format": ["json"]}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/search-empty", ("no results for 'q'", False)),
        ("/search-odd", ("no results for 'q'", False)),
        ("/search-broken", ("error: search failed: JSONDecodeError", True)),
        ("/search-down", ("error: search answered HTTP 503", True)),
    ],
)
def test_search_answers_that_are_not_results(
    tmp_path: Path, server: Server, http: httpx.Client, path: str, expected: tuple[str, bool]
) -> None:
    toolbox = box(tmp_path, http, search_url=server.url + path)
    assert call(toolbox, "web_search", query="q") == expected


def test_search_needs_an_endpoint(tmp_path: Path, http: httpx.Client) -> None:
    config = WebConfig(fetch=True)
    toolbox = Toolbox(
        planner_tools(WebConfig(fetch=True, search_url="http://127.0.0.1:1/s")),
        ToolContext(Workspace(tmp_path), web=config, http=http),
    )
    assert call(toolbox, "web_search", query="q") == ("error: web_search is not configured", True)
