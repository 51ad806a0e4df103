"""OpenCode's server API as a session uses it: the calls, and the ``/event`` wake-ups.

Verified against ``opencode serve`` 1.18.33 (every call names the workspace with
``?directory=``, so one server can serve several workspaces):

==============================================  ==========================================
``POST /session {title}``                        ``{id: "ses_..."}``
``GET /session/{id}``                            200, or 404 when OpenCode does not have it
``POST /session/{id}/prompt_async``              204 at once; the user message is stored a
``{parts, system?, model?, agent?}``             moment later, and the model runs
``GET /session/{id}/message``                    ``[{info, parts}]``: the truth
``GET /session/status``                          ``{id: {type: busy|retry}}``; idle: absent
``POST /session/{id}/abort``                     ``true``; the step ends with
                                                 ``MessageAbortedError``
``GET /permission``, ``POST /permission/{id}/    pending permission requests; a reject
reply {reply: "reject", message}``               lets the model carry on
``GET /question``, ``POST /question/{id}/        pending questions; a reject ends the
reject``                                         session's loop
``GET /session/{id}/children``                   sessions the ``task`` tool started
``GET /event``                                   server-sent events, best effort
==============================================  ==========================================
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Any

import httpx
import msgspec

from ocactors.actors.opencode_server import OpenCodeError, OpenCodeServer
from ocactors.actors.opencode_transcript import MESSAGES, OcMessage

WAKING = frozenset(
    {"session.status", "session.idle", "session.error", "message.updated"}
    | {"message.part.updated", "permission.asked", "question.asked"}
)


class OpenCodeApi:
    """The calls one session makes, over its own client, for one workspace directory."""

    def __init__(self, client: httpx.Client, directory: str) -> None:
        self._client = client
        self._params = {"directory": directory}

    def create(self, title: str) -> str:
        """A new OpenCode session; its id."""
        return str(self._request("POST", "/session", json={"title": title}).json()["id"])

    def exists(self, session: str) -> bool:
        """Whether OpenCode still has ``session``."""
        response = self._client.get(f"/session/{session}", params=self._params)
        return response.status_code == 200

    def prompt(self, session: str, body: dict[str, Any]) -> None:
        """Send a user message; OpenCode works on it in the background."""
        self._request("POST", f"/session/{session}/prompt_async", json=body)

    def messages(self, session: str) -> list[OcMessage]:
        """The session's messages, oldest first."""
        response = self._request("GET", f"/session/{session}/message")
        try:
            return MESSAGES.decode(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise OpenCodeError(f"OpenCode sent messages ocactors cannot read: {error}") from None

    def busy(self, session: str) -> bool:
        """Whether OpenCode is working on ``session`` (retrying counts as working)."""
        status = self._request("GET", "/session/status").json()
        return isinstance(status, dict) and session in status

    def abort(self, session: str) -> None:
        """Stop the session's current work."""
        self._request("POST", f"/session/{session}/abort")

    def pending(self, kind: str) -> list[dict[str, Any]]:
        """Pending ``permission`` requests or ``question``\\ s, of every session."""
        found = self._request("GET", f"/{kind}").json()
        return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []

    def reject(self, kind: str, request: str, message: str) -> None:
        """Refuse a permission request (with ``message`` for the model) or dismiss a question."""
        if kind == "permission":
            body = {"reply": "reject", "message": message}
            self._request("POST", f"/permission/{request}/reply", json=body)
        else:
            self._request("POST", f"/question/{request}/reject", json={})

    def children(self, session: str) -> set[str]:
        """Ids of the sessions ``session`` started (OpenCode's ``task`` tool)."""
        found = self._request("GET", f"/session/{session}/children").json()
        return {str(child.get("id")) for child in found if isinstance(child, dict)}

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._client.request(method, path, params=self._params, **kwargs)
        if response.status_code >= 400:
            raise OpenCodeError(
                f"OpenCode {method} {path} answered {response.status_code}: {response.text[:300]}"
            )
        return response


class EventFeed:
    """Wake-ups from OpenCode's ``/event`` stream, on a daemon thread (best effort).

    Events that can change what a session records (status, a finished step, a tool part, a
    permission request) wake the follower, who then looks at the truth; streamed text does
    not.  The stream is reconnected (pausing 0.5 s) until the feed is closed.
    ``session.error`` texts are kept: they explain a prompt OpenCode never answered.
    """

    def __init__(self, server: OpenCodeServer, directory: str) -> None:
        self._server = server
        self._directory = directory
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._client: httpx.Client | None = None
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._listen, name="opencode-events", daemon=True)
        self.errors: list[tuple[str, str]] = []
        """(OpenCode session id, one line) of each ``session.error`` seen."""

    def __enter__(self) -> EventFeed:
        self._client = self._server.client(timeout=httpx.Timeout(10.0, read=60.0))
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed.set()
        self._hang_up()
        self._thread.join(timeout=1.0)
        if self._client is not None:
            self._client.close()

    def wait(self, timeout: float) -> None:
        """Until an event arrives or ``timeout`` passes."""
        self._wake.wait(timeout)
        self._wake.clear()

    def _hang_up(self) -> None:
        """Shut the stream's socket: the only way to end a read blocked in another thread."""
        stream = self._response.extensions.get("network_stream") if self._response else None
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _listen(self) -> None:
        while not self._closed.is_set():
            with contextlib.suppress(Exception):  # best effort: reconnect, the truth is polled
                self._stream()
            self._closed.wait(0.5)

    def _stream(self) -> None:
        assert self._client is not None
        params = {"directory": self._directory}
        with self._client.stream("GET", "/event", params=params) as response:
            self._response = response
            for line in response.iter_lines():
                if self._closed.is_set():
                    return
                if line.startswith("data:"):
                    self._take(line[5:])

    def _take(self, data: str) -> None:
        try:
            event = msgspec.json.decode(data)
        except msgspec.DecodeError:
            return
        kind = event.get("type") if isinstance(event, dict) else None
        properties = event.get("properties") if isinstance(event, dict) else None
        if not isinstance(properties, dict) or kind not in WAKING:
            return
        if kind == "message.part.updated" and (properties.get("part") or {}).get("type") != "tool":
            return  # text streaming in: nothing to record until the step ends
        if kind == "session.error":
            self.errors.append((str(properties.get("sessionID", "")), error_text(properties)))
        self._wake.set()


def error_text(properties: dict[str, Any]) -> str:
    """A ``session.error``'s error in one line (its message can hold a stack trace)."""
    error = properties.get("error")
    if not isinstance(error, dict):
        return "error"
    data = error.get("data")
    message = data.get("message") if isinstance(data, dict) else None
    first = str(message).strip().splitlines()[0][:300] if message else ""
    return f"{error.get('name', 'error')}: {first}" if first else str(error.get("name"))
