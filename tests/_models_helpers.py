"""Shared bits of the model tests: a short-timeout httpx client and a free, closed port."""

from __future__ import annotations

import socket

import httpx

from ocactors.events.catalogue import ChatMessage

SECRET = "sk-test-SECRET-0123456789abcdef"
CONVERSATION = [
    ChatMessage(role="system", content="You are a worker."),
    ChatMessage(role="user", content="Fix the bug in a.py."),
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]


def http_client() -> httpx.Client:
    """A client whose every wait is short, so a broken test fails fast."""
    return httpx.Client(
        timeout=httpx.Timeout(5.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
    )


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def headers(actor: str = "worker:t1", turn: int | None = None) -> dict[str, str]:
    """The headers a session sends."""
    sent = {"X-Ocactors-Mission": "m-1", "X-Ocactors-Actor": actor}
    if turn is not None:
        sent["X-Ocactors-Turn"] = str(turn)
    return sent
