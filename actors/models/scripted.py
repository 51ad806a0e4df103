"""A scripted model server: a real HTTP server on loopback that plays scripted turns.

It speaks OpenAI Chat Completions (``POST /v1/chat/completions``) and Anthropic Messages
(``POST /v1/messages``), streamed and not, so the real clients are exercised over real
sockets by tests, benchmarks and the offline demo. Which turn to play::

    actor = X-Ocactors-Actor header (default "default")
    turn  = X-Ocactors-Turn header (1-based), else assistant messages in the request + 1
    script[actor] (exact name first, then fnmatch patterns in insertion order)
      -> list of Turns (turn N plays list[N-1]) or a callable (ScriptedRequest) -> Turn

A Turn may carry a Fault that hits its first ``times`` attempts (counted per (actor,
turn)); after that the turn plays normally. Latency (server-wide ``latency_s`` plus the
turn's ``delay_s``) is slept outside every lock, so concurrent requests overlap.

    with ScriptedModelServer({"worker:*": [Turn("done")]}) as server:
        client = OpenAIChatClient(http, base_url=server.base_url, api_key=None, model="m")
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from ocactors.actors.models import scripted_protocol as wire
from ocactors.actors.models.scripted_script import (
    Fault,
    FaultKind,
    Protocol,
    RecordedRequest,
    Script,
    ScriptedRequest,
    ScriptEntry,
    ScriptError,
    ToolCallScript,
    Turn,
    choose_turn,
    load_script,
    scripted_request,
)
from ocactors.actors.models.types import estimate_tokens
from ocactors.events.catalogue import ChatMessage, ToolCall

__all__ = [
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "Script",
    "ScriptEntry",
    "ScriptError",
    "ScriptedModelServer",
    "ScriptedRequest",
    "ToolCallScript",
    "Turn",
    "load_script",
]


@dataclass
class _Response:
    status: int
    body: bytes = b""
    events: list[bytes] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    disconnect: bool = False


class ScriptedModelServer:
    """The server; a context manager. Thread-safe. See the module docstring."""

    def __init__(self, script: Script, *, latency_s: float = 0.0) -> None:
        self.script = script
        self.latency_s = latency_s
        self.requests: list[RecordedRequest] = []
        self.peak_concurrency = 0
        self.in_flight = 0
        self._attempts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"scripted-model-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:<port>`` (Anthropic clients and Ollama probes use this)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: OpenAI base URL (Anthropic clients accept it too)."""
        return f"{self.root_url}/v1"

    def __enter__(self) -> ScriptedModelServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving, drop open connections, wait for handler threads (bounded)."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._httpd.shutdown()
        with self._lock:
            connections = dict(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        self._thread.join(timeout=5)
        for thread in connections.values():
            thread.join(timeout=5)

    def reset_stats(self) -> None:
        """Forget recorded requests and the peak (fault counters are script state: kept)."""
        with self._lock:
            self.requests.clear()
            self.peak_concurrency = self.in_flight

    def calls_for(self, actor: str) -> list[RecordedRequest]:
        """Recorded requests of one actor, in the order they were answered."""
        with self._lock:
            return [r for r in self.requests if r.actor == actor]

    # --- used by the handler threads ---------------------------------------------------

    def _track(self, sock: socket.socket, thread: threading.Thread | None) -> None:
        with self._lock:
            if thread is None:
                self._connections.pop(sock, None)
            else:
                self._connections[sock] = thread

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self.in_flight)

    def _leave(self, record: RecordedRequest) -> None:
        with self._lock:
            self.in_flight -= 1
            self.requests.append(record)

    def _attempt(self, actor: str, turn: int) -> int:
        """Count an attempt at (actor, turn); returns its 1-based number."""
        with self._lock:
            count = self._attempts.get((actor, turn), 0) + 1
            self._attempts[(actor, turn)] = count
            return count

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._closing.wait(seconds)

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[_Response, str, int]:
        """Everything between reading a request and writing its response."""
        protocol: Protocol = "anthropic" if path.rstrip("/").endswith("/messages") else "openai"
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as error:
            return (
                _error(
                    protocol, 400, f"request body is not JSON: {error}", "invalid_request_error"
                ),
                "?",
                0,
            )
        request = scripted_request(protocol, headers, body)
        try:
            turn = choose_turn(self.script, request)
        except ScriptError as error:
            return (
                _error(protocol, 500, f"scripted server: {error}", "api_error"),
                request.actor,
                request.turn,
            )
        fault = turn.fault
        attempt = self._attempt(request.actor, request.turn)
        self._pause(self.latency_s + turn.delay_s)
        if fault is not None and attempt <= fault.times:
            return _faulty(fault, turn, request, self._pause), request.actor, request.turn
        return _play(turn, request, malformed=False), request.actor, request.turn


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # socketserver's 5 drops SYNs of a 50-session fan-out
    owner: ScriptedModelServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (after a stall, a timeout) is not an error worth a trace."""


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # headers and body go out at once: no delayed-ACK stalls
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    timeout = 30

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, threading.current_thread())

    def finish(self) -> None:
        self.server.owner._track(self.connection, None)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and benchmarks read ``.requests`` instead."""

    def do_GET(self) -> None:
        """Model lists and lookups, so that Ollama detection finds "scripted" and preflight
        checks pass: ``/models`` lists "scripted", ``/models/<id>`` knows any model (in a
        shape both OpenAI's and Anthropic's clients read)."""
        path = self.path.split("?", 1)[0].rstrip("/")
        _, found, name = path.rpartition("/models/")
        if path.endswith("/api/tags"):
            payload: dict[str, Any] = {"models": [{"name": "scripted", "model": "scripted"}]}
        elif found and name and "/" not in name:
            payload = {"id": name, "object": "model", "type": "model", "display_name": name}
        else:
            payload = {"object": "list", "data": [{"id": "scripted", "object": "model"}]}
        self._write(_Response(200, json.dumps(payload).encode()))

    def do_POST(self) -> None:
        owner = self.server.owner
        started = time.monotonic()
        headers = {k.lower(): v for k, v in self.headers.items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        owner._enter()
        response, actor, turn = _Response(500), "?", 0
        try:
            response, actor, turn = owner._answer(self.path, headers, raw)
        except Exception as error:  # a bug in a callable script: tell the client, keep serving
            response = _error("openai", 500, f"scripted server failed: {error!r}", "api_error")
        finally:
            body = json.loads(raw) if _is_json(raw) else raw.decode("utf-8", "replace")
            record = RecordedRequest(
                self.path, headers, body, actor, turn, started, time.monotonic(), response.status
            )
            owner._leave(record)
        self._write(response)

    def _write(self, response: _Response) -> None:
        if response.disconnect and not response.events:
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.stream:
            self._write_stream(response)
        else:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

    def _write_stream(self, response: _Response) -> None:
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in response.events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        if response.disconnect:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(b"0\r\n\r\n")


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True


def _answer_of(turn: Turn, request: ScriptedRequest, *, malformed: bool) -> wire.Answer:
    calls = []
    for index, (name, arguments) in enumerate(turn.tool_calls):
        text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
        if malformed:
            text = text[: max(1, len(text) // 2)]
        ident = turn.call_ids[index] if index < len(turn.call_ids) else None
        calls.append(
            ToolCall(id=ident or f"call_{request.turn}_{index}", name=name, arguments=text)
        )
    reply = ChatMessage(
        role="assistant", content=turn.content, tool_calls=calls, reasoning=turn.reasoning
    )
    usage = (estimate_tokens(request.messages), estimate_tokens([reply])) if turn.usage else None
    return wire.Answer(
        turn.content,
        calls,
        turn.reasoning,
        usage,
        turn.finish_reason,
        reasoning_field=turn.reasoning_field,
        reasoning_details=turn.reasoning_details,
        refusal=turn.refusal,
        thinking_blocks=turn.thinking_blocks,
    )


def _play(turn: Turn, request: ScriptedRequest, *, malformed: bool) -> _Response:
    answer = _answer_of(turn, request, malformed=malformed)
    model = str(request.body.get("model", "scripted"))
    ident = f"{request.actor}-{request.turn}"
    stream = bool(request.body.get("stream"))
    if request.protocol == "anthropic":
        if stream:
            return _Response(
                200, events=wire.anthropic_stream(answer, model, f"msg_{ident}"), stream=True
            )
        return _Response(
            200, json.dumps(wire.anthropic_body(answer, model, f"msg_{ident}")).encode()
        )
    if stream:
        usage = bool((request.body.get("stream_options") or {}).get("include_usage"))
        events = wire.openai_stream(answer, model, f"chatcmpl-{ident}", usage)
        return _Response(200, events=events, stream=True)
    return _Response(200, json.dumps(wire.openai_body(answer, model, f"chatcmpl-{ident}")).encode())


def _faulty(
    fault: Fault, turn: Turn, request: ScriptedRequest, pause: Callable[[float], None]
) -> _Response:
    protocol = request.protocol
    match fault.kind:
        case "429":
            response = _error(protocol, 429, "scripted rate limit", "rate_limit_error")
            if fault.retry_after is not None:
                response.headers["Retry-After"] = f"{fault.retry_after:g}"
            return response
        case "500":
            return _error(protocol, 500, "scripted server error", "api_error")
        case "401":
            return _error(protocol, 401, "scripted: invalid API key", "authentication_error")
        case "context_length":
            return _overflow(protocol)
        case "stall":
            pause(fault.stall_s)
            return _play(turn, request, malformed=False)
        case "malformed":
            return _play(turn, request, malformed=True)
        case "bad_body":
            stream = bool(request.body.get("stream"))
            if stream:
                return _Response(200, events=[b"data: {not json\n\n"], stream=True)
            return _Response(200, b"{not json")
        case "disconnect":
            played = _play(turn, request, malformed=False)
            return _Response(200, events=played.events[:1], stream=played.stream, disconnect=True)
    raise ScriptError(f"unknown fault kind {fault.kind!r}")


def _error(protocol: Protocol, status: int, message: str, kind: str) -> _Response:
    if protocol == "anthropic":
        body = wire.anthropic_error(message, kind)
    else:
        body = wire.openai_error(message, kind)
    return _Response(status, json.dumps(body).encode())


def _overflow(protocol: Protocol) -> _Response:
    if protocol == "anthropic":
        message = "prompt is too long: 250000 tokens > 200000 maximum"
        return _Response(
            400, json.dumps(wire.anthropic_error(message, "invalid_request_error")).encode()
        )
    message = (
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 250000 tokens. Please reduce the length of the messages."
    )
    body = wire.openai_error(message, "invalid_request_error", "context_length_exceeded")
    return _Response(400, json.dumps(body).encode())
