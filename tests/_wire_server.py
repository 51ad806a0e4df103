"""Recorded provider responses (``tests/data/wire``) and a loopback server replaying them.

Each fixture is a body file, byte for byte as the provider sent it, and a sidecar
``<name>.meta.json`` naming its source (SDK fixture, documentation page, issue thread),
its status and content type, and what a client must make of it (``expect``).

The server routes by the first path segment: ``/<a>+<b>/v1/chat/completions`` answers its
first request with fixture ``a``, every later one with ``b``; so a client's base URL picks
the fixtures, and tests sharing one server do not disturb each other. Requests are kept.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

WIRE = Path(__file__).parent / "data" / "wire"


@dataclass(frozen=True)
class Fixture:
    """One recorded response and what a client must make of it."""

    name: str
    meta: dict[str, Any]
    body: bytes

    @property
    def protocol(self) -> str:
        return str(self.meta["protocol"])

    @property
    def stream(self) -> bool:
        return "event-stream" in str(self.meta["content_type"])

    @property
    def expect(self) -> dict[str, Any]:
        expect: dict[str, Any] = self.meta["expect"]
        return expect


def load(name: str) -> Fixture:
    meta = json.loads((WIRE / f"{name}.meta.json").read_text())
    return Fixture(name=name, meta=meta, body=(WIRE / meta["body"]).read_bytes())


def all_fixtures() -> list[Fixture]:
    names = sorted(p.name.removesuffix(".meta.json") for p in WIRE.glob("*.meta.json"))
    return [load(name) for name in names]


@dataclass
class _State:
    requests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, route: str, body: dict[str, Any]) -> int:
        """Keep a request; returns how many came to this route before it."""
        with self.lock:
            seen = self.requests.setdefault(route, [])
            seen.append(body)
            return len(seen) - 1


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        route = self.path.strip("/").split("/")[0]
        names = route.split("+")
        index = self.server.state.record(route, json.loads(raw or b"{}"))
        fixture = load(names[min(index, len(names) - 1)])
        self.send_response(int(fixture.meta["status"]))
        self.send_header("content-type", str(fixture.meta["content_type"]))
        self.send_header("content-length", str(len(fixture.body)))
        self.end_headers()
        self.wfile.write(fixture.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read failures from assertions, not from stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class WireServer:
    """The replaying server on 127.0.0.1; a context manager."""

    def __init__(self) -> None:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.state = _State()
        self.root = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, *names: str) -> str:
        """The base URL whose requests are answered by ``names`` in turn."""
        return f"{self.root}/{'+'.join(names)}/v1"

    def requests(self, *names: str) -> list[dict[str, Any]]:
        """The JSON bodies sent to the route of ``names``."""
        with self._httpd.state.lock:
            return list(self._httpd.state.requests.get("+".join(names), []))

    def __enter__(self) -> WireServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
