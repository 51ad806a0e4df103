"""One worker session run as an OpenCode session, recorded as ocactors events.

The session is created on the mission's OpenCode server (titled ``worker T1: <title>``),
prompted with the task's brief and lease, and followed until the model stops: OpenCode's
``/event`` stream only wakes us (:class:`EventFeed`; it is best-effort), and each look goes
to the truth, ``GET /session/{id}/message``, whose new steps are recorded as ``model.*`` and
``tool.*`` events (:mod:`ocactors.actors.opencode_transcript`).  Every wait is bounded by
``poll_s`` and every look starts with the Commander's gate, so ``ocactors stop``, the TTL and
the budget interrupt it: the OpenCode session is aborted, then :class:`SessionInterrupted`
goes on up as for any session.

The lease is enforced after the session (and after an abort) with the mission's
:class:`LeaseGuard`: what OpenCode changed outside the lease is put back and the session fails
naming the paths.  A worker that stops before writing all of its files is told so (bounded by
``max_nudges``), as ``finish_task`` would tell it.

``session.linked`` records the OpenCode session's id, so a resume re-attaches: a session that
finished meanwhile is read and finished; one that was aborted or failed is prompted to
continue; one OpenCode no longer has is started again there.  Permission requests and
questions of our sessions are rejected (nobody is there to answer them).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import httpx
import msgspec

from ocactors.actors import opencode_transcript as oc
from ocactors.actors.models import ModelClient
from ocactors.actors.opencode_server import (
    OpenCodeError,
    OpenCodeServer,
    OpenCodeServerDied,
    OpenCodeUnavailable,
)
from ocactors.actors.session import (
    AgentSession,
    Recorder,
    SessionBrief,
    SessionInterrupted,
    SessionLimits,
    SessionOutcome,
)
from ocactors.actors.session_state import apply_session, fold_session
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import ChatMessage, Event, Record
from ocactors.tools import LeaseGuard, LeaseReport, Toolbox

BACKEND = "opencode"
WAKING = frozenset(
    {"session.status", "session.idle", "session.error", "message.updated"}
    | {"message.part.updated", "permission.asked", "question.asked"}
)
DEFAULT_LIMITS = SessionLimits()
NO_REPLY = oc.Reply(0, None)
REJECTION = "ocactors runs this session unattended: nobody can approve this. Carry on without it."


class RunsSession(Protocol):
    """What a session factory returns: something whose ``run`` ends the session."""

    def run(self) -> SessionOutcome: ...


@dataclass(frozen=True, slots=True)
class OpenCodeOptions:
    """How worker sessions run on OpenCode.

    ``provider_id``/``model_id`` None: OpenCode's own default model.  ``poll_s``: the longest
    wait between two looks at the truth.  ``answer_grace_s``: how long a prompt may stay
    unanswered while OpenCode is idle (a model it cannot find) before the session fails.
    ``max_transport_errors``: looks in a row that may fail before the server counts as gone.
    ``died_grace_s``: how long a session whose server died waits for the mission to stop.
    """

    provider_id: str | None = None
    model_id: str | None = None
    agent: str | None = None
    poll_s: float = 1.0
    answer_grace_s: float = 30.0
    abort_timeout_s: float = 10.0
    max_transport_errors: int = 10
    died_grace_s: float = 5.0
    request_timeout_s: float = 30.0
    result_limit: int = 20_000

    @property
    def model(self) -> str:
        """``provider/model`` as recorded on ``session.started``."""
        if self.provider_id and self.model_id:
            return f"{self.provider_id}/{self.model_id}"
        return "opencode:default"


@dataclass(frozen=True, slots=True)
class Done:
    """The model stopped with an answer: the summary."""

    summary: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The session cannot succeed: why."""

    reason: str


Ending = Done | Failed


@dataclass(frozen=True, slots=True)
class Look:
    """What one look at the truth found: an ending, a prompt not answered yet, or a model
    idle after a tool step (``settled``: that step's message id)."""

    reply: oc.Reply = NO_REPLY
    ending: Ending | None = None
    unanswered: bool = False
    settled: str = ""


class OpenCodeSession:
    """One worker session on OpenCode; same construction and ``run`` as AgentSession."""

    def __init__(
        self,
        brief: SessionBrief,
        *,
        server: OpenCodeServer,
        toolbox: Toolbox,
        record: Recorder,
        gate: Callable[[], None] = lambda: None,
        limits: SessionLimits = DEFAULT_LIMITS,
        prior: Iterable[Record] = (),
        guard: LeaseGuard | None = None,
        options: OpenCodeOptions = OpenCodeOptions(),
    ) -> None:
        events = tuple(prior)
        self.brief = brief
        self.state = fold_session(events)
        self._server, self._record, self._gate = server, record, gate
        self._limits, self._guard, self._options = limits, guard, options
        workspace = toolbox.ctx.workspace
        self._root = workspace.root
        self._lease = sorted(workspace.writable or ())
        self._before_write = workspace.on_before_write
        self._keys = oc.recorded_keys(events)
        self._link = oc.last_link(events)
        self._file_nudges = oc.nudges_for_files(events)
        self._family: set[str] = set()
        self._feed: EventFeed | None = None
        self._http: httpx.Client | None = None

    # --- the outline -------------------------------------------------------------------

    def run(self) -> SessionOutcome:
        """Run (or re-attach to) the OpenCode session until it ends; raises SessionInterrupted."""
        if not self.state.ended:
            timeout = self._options.request_timeout_s
            with (
                self._server.client(timeout=timeout) as http,
                EventFeed(self._server, str(self._root)) as feed,
            ):
                self._http, self._feed = http, feed
                ending = self._reported()
            self._end(ending)
        return SessionOutcome(self.state.result, self.state.failure, self.state)

    def _reported(self) -> Ending:
        """The session, its transport failures told in one line, a dead server as a stop.

        When ``opencode serve`` dies, the runner (watching it) stops the mission: waiting a
        little for that stop turns the death into a clean, resumable interruption instead of
        a crash that the Commander would restart against a dead server.
        """
        try:
            return self._guarded()
        except (httpx.TransportError, OpenCodeServerDied) as error:
            if self._server.alive():
                raise OpenCodeUnavailable(f"OpenCode at {self._server.url}: {error}") from None
            self._await_stop(self._options.died_grace_s)
            self._server.check()
            raise

    def _await_stop(self, seconds: float) -> None:
        """Poll the gate for up to ``seconds``; it raises SessionInterrupted on a stop."""
        deadline = time.monotonic() + seconds
        stop = threading.Event()
        while time.monotonic() < deadline:
            self._gate()
            stop.wait(0.05)

    def _guarded(self) -> Ending:
        """The session between a snapshot and the lease check; aborted if anything breaks."""
        snapshot = self._guard.before(self._lease, owner=self.brief.actor) if self._guard else None
        report: LeaseReport | None = None
        try:
            ending = self._drive()
        except BaseException:
            self._abort()
            raise
        finally:
            if snapshot is not None and self._guard is not None:
                report = self._guard.after(snapshot)
        if report is not None and report.violated:
            return Failed(violation(report))
        return ending

    def _drive(self) -> Ending:
        asked = self._dispatch()
        while True:
            ending = self._follow(asked)
            missing = [f for f in self._lease if not (self._root / f).exists()]
            if not isinstance(ending, Done) or not missing:
                return ending
            if self._file_nudges >= self._limits.max_nudges:
                return Failed(f"the session ended without writing {', '.join(missing)}")
            asked = self._nudge(missing)

    def _end(self, ending: Ending) -> None:
        if isinstance(ending, Done):
            summary = ending.summary or f"wrote {', '.join(self._lease) or 'nothing'}"
            self._emit(ev.SessionFinished(session=self.brief.session, result={"summary": summary}))
        else:
            self._emit(ev.SessionFailed(session=self.brief.session, reason=ending.reason))

    # --- starting, re-attaching --------------------------------------------------------

    def _dispatch(self) -> int:
        """Make sure OpenCode is working on the task; the user messages before our prompt."""
        if not self.state.started:
            self._emit(self._started())
        if self._link is None or not self._exists(self._link.external_id):
            return self._open()
        messages = self._messages()
        self._sync(messages)
        reply = oc.reply_of(messages)
        if self._busy() or (reply.final and _answered(reply)):
            return reply.user_messages - 1  # working, or finished while we were away
        return self._prompt(oc.CONTINUE, messages)

    def _started(self) -> ev.SessionStarted:
        return ev.SessionStarted(
            session=self.brief.session,
            role=self.brief.role,
            model=self._options.model,
            task_id=self.brief.task_id,
            messages=[
                ChatMessage(role="system", content=oc.SYSTEM),
                ChatMessage(role="user", content=oc.first_prompt(self.brief.brief, self._lease)),
            ],
        )

    def _open(self) -> int:
        """A new OpenCode session, linked, prompted with the whole brief."""
        title = oc.title_of(self.brief.brief, self.brief.task_id, self.brief.actor)
        created = self._request("POST", "/session", json={"title": title}).json()
        turns = self.state.turn - (1 if self.state.awaiting_model else 0)
        self._emit(
            ev.SessionLinked(
                session=self.brief.session,
                backend=BACKEND,
                external_id=str(created["id"]),
                url=self._server.url,
                turns=turns,
            )
        )
        if self._before_write is not None:
            for path in self._lease:
                self._before_write(path)
        return self._prompt(oc.first_prompt(self.brief.brief, self._lease), [])

    def _prompt(self, text: str, messages: Sequence[oc.OcMessage]) -> int:
        body: dict[str, Any] = {"parts": [{"type": "text", "text": text}], "system": oc.SYSTEM}
        if self._options.provider_id and self._options.model_id:
            body["model"] = {
                "providerID": self._options.provider_id,
                "modelID": self._options.model_id,
            }
        if self._options.agent:
            body["agent"] = self._options.agent
        self._request("POST", f"/session/{self._id}/prompt_async", json=body)
        return oc.reply_of(messages).user_messages

    def _nudge(self, missing: Sequence[str]) -> int:
        text = oc.missing_prompt(missing)
        self._file_nudges += 1
        self._emit(
            ev.SessionNudged(
                session=self.brief.session,
                turn=self.state.turn,
                reason=oc.MISSING_FILES,
                message=ChatMessage(role="user", content=text),
            )
        )
        return self._prompt(text, self._messages())

    # --- following ---------------------------------------------------------------------

    def _follow(self, asked: int) -> Ending:
        """Look at the truth after every wake-up (or ``poll_s``) until the model stops."""
        waiting_since: float | None = None
        settled = ""
        errors = 0
        while True:
            self._gate()
            self._server.check()
            try:
                look = self._look(asked)
                errors = 0
            except httpx.TransportError as error:
                errors += 1
                if errors >= self._options.max_transport_errors:
                    raise OpenCodeUnavailable(f"OpenCode at {self._server.url}: {error}") from None
                look = Look()
            if look.ending is not None:
                return look.ending
            if look.settled and look.settled == settled:
                return _ending(look.reply)  # idle after a tool step, twice: it stopped there
            settled = look.settled
            waiting_since = (waiting_since or time.monotonic()) if look.unanswered else None
            if waiting_since is not None and (self._errors() or self._waited(waiting_since)):
                return Failed(self._unanswered())
            self._wait()

    def _look(self, asked: int) -> Look:
        """One look: status first, then messages (so an idle status is never the older)."""
        busy = self._busy()
        messages = self._messages()
        self._sync(messages)
        if busy:
            self._answer_requests()
        if self._too_many_turns(messages):
            self._abort()
            return Look(ending=Failed(f"no final answer after {self._limits.max_turns} turns"))
        reply = oc.reply_of(messages)
        answered = reply.user_messages > asked and reply.last is not None and reply.last.info.done
        if busy:
            return Look(reply=reply)
        if not answered or reply.last is None:
            return Look(reply=reply, unanswered=True)
        if reply.final:
            return Look(reply=reply, ending=_ending(reply))
        return Look(reply=reply, settled=reply.last.info.id)

    def _waited(self, since: float) -> bool:
        return time.monotonic() - since > self._options.answer_grace_s

    def _unanswered(self) -> str:
        errors = self._errors()
        detail = f": {errors[-1]}" if errors else " (check the model in OpenCode's config)"
        return f"OpenCode stopped without answering the prompt{detail}"

    def _errors(self) -> list[str]:
        """``session.error`` texts OpenCode sent about our session."""
        if self._feed is None or self._link is None:
            return []
        return [text for sid, text in self._feed.errors if sid in ("", self._id)]

    def _too_many_turns(self, messages: Sequence[oc.OcMessage]) -> bool:
        assistants = sum(m.info.role == "assistant" for m in messages)
        return assistants > self._limits.max_turns

    def _wait(self) -> None:
        if self._feed is not None:
            self._feed.wait(self._options.poll_s)

    def _sync(self, messages: Sequence[oc.OcMessage]) -> None:
        """Record every step of the transcript the log does not hold yet."""
        offset = self._link.turns if self._link else 0
        limit = self._options.result_limit
        for key, event in oc.transcript(self.brief.session, messages, offset, limit):
            if key not in self._keys:
                self._emit(event)
                self._keys.add(key)

    # --- stopping ----------------------------------------------------------------------

    def _abort(self) -> None:
        """Abort the OpenCode session and wait (bounded) until it is idle; best effort."""
        if self._link is None or not self._server.alive():
            return
        deadline = time.monotonic() + self._options.abort_timeout_s
        with contextlib.suppress(httpx.HTTPError, OpenCodeError, SessionInterrupted):
            self._request("POST", f"/session/{self._id}/abort")
            while self._busy() and time.monotonic() < deadline:
                self._wait_briefly()
            self._sync(self._messages())

    def _wait_briefly(self) -> None:
        if self._feed is not None:
            self._feed.wait(min(self._options.poll_s, 0.2))

    # --- OpenCode's API ----------------------------------------------------------------

    @property
    def _id(self) -> str:
        assert self._link is not None
        return self._link.external_id

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        params = {"directory": str(self._root)}
        assert self._http is not None, "only while the session runs"
        response = self._http.request(method, path, params=params, **kwargs)
        if response.status_code >= 400:
            raise OpenCodeError(
                f"OpenCode {method} {path} answered {response.status_code}: {response.text[:300]}"
            )
        return response

    def _exists(self, session_id: str) -> bool:
        assert self._http is not None, "only while the session runs"
        params = {"directory": str(self._root)}
        response = self._http.get(f"/session/{session_id}", params=params)
        return response.status_code == 200

    def _messages(self) -> list[oc.OcMessage]:
        response = self._request("GET", f"/session/{self._id}/message")
        try:
            return oc.MESSAGES.decode(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise OpenCodeError(f"OpenCode sent messages ocactors cannot read: {error}") from None

    def _busy(self) -> bool:
        status = self._request("GET", "/session/status").json()
        return isinstance(status, dict) and self._id in status

    def _answer_requests(self) -> None:
        """Reject the permission requests and questions of our session (and its children)."""
        for kind, reply in (("permission", "/reply"), ("question", "/reject")):
            for request in self._request("GET", f"/{kind}").json():
                if self._ours(str(request.get("sessionID", ""))):
                    body = {"reply": "reject", "message": REJECTION} if kind == "permission" else {}
                    with contextlib.suppress(OpenCodeError):
                        self._request("POST", f"/{kind}/{request['id']}{reply}", json=body)

    def _ours(self, session_id: str) -> bool:
        if session_id == self._id or session_id in self._family:
            return True
        children = self._request("GET", f"/session/{self._id}/children").json()
        self._family = {str(child.get("id")) for child in children}
        return session_id in self._family

    # --- the log -----------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        stamped = self._record(event, self.brief.actor)
        self.state = apply_session(self.state, stamped)
        if isinstance(stamped, ev.SessionLinked):
            self._link = stamped


def _answered(reply: oc.Reply) -> bool:
    """The final answer is a real one (not an abort), so a resume can finish with it."""
    info = reply.last.info if reply.last else None
    return bool(info and info.error is None)


def _ending(reply: oc.Reply) -> Ending:
    info = reply.last.info if reply.last else None
    if info is None:
        return Failed("OpenCode ended without an answer")
    if info.error is not None and info.error.name == oc.ABORTED:
        return Failed("the OpenCode session was aborted from outside ocactors")
    if info.error is not None:
        return Failed(f"OpenCode failed: {info.error.text}")
    return Done(oc.summary_of(reply.last))


def _error_text(properties: dict[str, Any]) -> str:
    error = properties.get("error")
    if not isinstance(error, dict):
        return "error"
    data = error.get("data")
    message = data.get("message") if isinstance(data, dict) else None
    first = str(message).strip().splitlines()[0][:300] if message else ""
    return f"{error.get('name', 'error')}: {first}" if first else str(error.get("name"))


def violation(report: LeaseReport) -> str:
    """The session's failure when it changed files outside its lease."""
    shown = ", ".join(f"{c.path} ({c.kind}, {c.outcome})" for c in report.changes[:20])
    more = len(report.changes) - 20
    listed = shown + (f" and {more} more" if more > 0 else "")
    return f"the OpenCode session changed files outside its lease, put back: {listed}"


class EventFeed:
    """Wake-ups from OpenCode's ``/event`` stream, on a daemon thread (best effort).

    Any event about a session wakes the follower, who then looks at the truth; the stream
    is reconnected (bounded pauses) until the feed is closed.  ``session.error`` texts are
    kept: they explain a prompt OpenCode never answered.
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
        """(OpenCode session id, text) of each ``session.error`` seen."""

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

    def _hang_up(self) -> None:
        """Shut the stream's socket: the only way to end a read blocked in another thread."""
        stream = self._response.extensions.get("network_stream") if self._response else None
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def wait(self, timeout: float) -> None:
        """Until an event arrives or ``timeout`` passes."""
        self._wake.wait(timeout)
        self._wake.clear()

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
        if not isinstance(event, dict):
            return
        kind, properties = event.get("type"), event.get("properties")
        if not isinstance(properties, dict) or kind not in WAKING:
            return
        if kind == "message.part.updated" and (properties.get("part") or {}).get("type") != "tool":
            return  # text streaming in: nothing to record until the step ends
        if kind == "session.error":
            self.errors.append((str(properties.get("sessionID", "")), _error_text(properties)))
        self._wake.set()


def opencode_session_factory(
    server: OpenCodeServer,
    guard: LeaseGuard | None,
    options: OpenCodeOptions = OpenCodeOptions(),
    *,
    roles: frozenset[str] = frozenset({"worker"}),
) -> Callable[..., RunsSession]:
    """A ``MissionContext.session_factory``: ``roles`` on OpenCode, the others on AgentSession.

    The planner and reviewer finish with ocactors' own tools (``submit_plan``,
    ``submit_review``), which OpenCode sessions do not have, so they stay on AgentSession.
    """

    def build(
        brief: SessionBrief,
        *,
        client: ModelClient,
        toolbox: Toolbox,
        record: Recorder,
        mission: str,
        gate: Callable[[], None] = lambda: None,
        limits: SessionLimits = DEFAULT_LIMITS,
        prior: Iterable[Record] = (),
    ) -> RunsSession:
        if brief.role not in roles:
            return AgentSession(
                brief,
                client=client,
                toolbox=toolbox,
                record=record,
                mission=mission,
                gate=gate,
                limits=limits,
                prior=prior,
            )
        return OpenCodeSession(
            brief,
            server=server,
            toolbox=toolbox,
            record=record,
            gate=gate,
            limits=limits,
            prior=prior,
            guard=guard,
            options=options,
        )

    return build
