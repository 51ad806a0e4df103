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
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from ocactors.actors import opencode_transcript as oc
from ocactors.actors.models import ModelClient
from ocactors.actors.opencode_api import EventFeed, OpenCodeApi
from ocactors.actors.opencode_server import (
    OpenCodeError,
    OpenCodeServer,
    OpenCodeServerDied,
    OpenCodeUnavailable,
)
from ocactors.actors.session import (
    AgentSession,
    Recorder,
    RunsSession,
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
DEFAULT_LIMITS = SessionLimits()
NO_REPLY = oc.Reply(0, None)
REJECTION = "ocactors runs this session unattended: nobody can approve this. Carry on without it."


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
class Look:
    """What one look at the truth found: an ending, a prompt not answered yet, or a model
    idle after a tool step (``settled``: that step's message id)."""

    reply: oc.Reply = NO_REPLY
    ending: oc.Ending | None = None
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
        self._opencode: OpenCodeApi | None = None

    # --- the outline -------------------------------------------------------------------

    def run(self) -> SessionOutcome:
        """Run (or re-attach to) the OpenCode session until it ends; raises SessionInterrupted."""
        if not self.state.ended:
            timeout = self._options.request_timeout_s
            with (
                self._server.client(timeout=timeout) as http,
                EventFeed(self._server, str(self._root)) as feed,
            ):
                self._opencode, self._feed = OpenCodeApi(http, str(self._root)), feed
                ending = self._reported()
            self._end(ending)
        return SessionOutcome(self.state.result, self.state.failure, self.state)

    def _reported(self) -> oc.Ending:
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

    def _guarded(self) -> oc.Ending:
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
            return oc.Failed(oc.violation(report))
        return ending

    def _drive(self) -> oc.Ending:
        asked = self._dispatch()
        while True:
            ending = self._follow(asked)
            missing = [f for f in self._lease if not (self._root / f).exists()]
            if not isinstance(ending, oc.Done) or not missing:
                return ending
            if self._file_nudges >= self._limits.max_nudges:
                return oc.Failed(f"the session ended without writing {', '.join(missing)}")
            asked = self._nudge(missing)

    def _end(self, ending: oc.Ending) -> None:
        if isinstance(ending, oc.Done):
            summary = ending.summary or f"wrote {', '.join(self._lease) or 'nothing'}"
            self._emit(ev.SessionFinished(session=self.brief.session, result={"summary": summary}))
        else:
            self._emit(ev.SessionFailed(session=self.brief.session, reason=ending.reason))

    # --- starting, re-attaching --------------------------------------------------------

    def _dispatch(self) -> int:
        """Make sure OpenCode is working on the task; the user messages before our prompt."""
        if not self.state.started:
            self._emit(self._started())
        if self._link is None or not self._api.exists(self._link.external_id):
            return self._open()
        messages = self._api.messages(self._id)
        self._sync(messages)
        reply = oc.reply_of(messages)
        if self._api.busy(self._id) or (reply.final and oc.answered(reply)):
            return reply.user_messages - 1  # working, or finished while we were away
        self._emit(
            ev.SessionNudged(
                session=self.brief.session,
                turn=self.state.turn,
                reason=oc.RESUMED,
                message=ChatMessage(role="user", content=oc.CONTINUE),
            )
        )
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
        created = self._api.create(title)
        turns = self.state.turn - (1 if self.state.awaiting_model else 0)
        self._emit(
            ev.SessionLinked(
                session=self.brief.session,
                backend=BACKEND,
                external_id=created,
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
        self._api.prompt(self._id, body)
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
        return self._prompt(text, self._api.messages(self._id))

    # --- following ---------------------------------------------------------------------

    def _follow(self, asked: int) -> oc.Ending:
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
                return oc.ending_of(look.reply)  # idle after a tool step, twice: it stopped there
            settled = look.settled
            waiting_since = (waiting_since or time.monotonic()) if look.unanswered else None
            if waiting_since is not None and (self._errors() or self._waited(waiting_since)):
                return oc.Failed(self._unanswered())
            self._wait()

    def _look(self, asked: int) -> Look:
        """One look: status first, then messages (so an idle status is never the older)."""
        busy = self._api.busy(self._id)
        messages = self._api.messages(self._id)
        self._sync(messages)
        if busy:
            self._answer_requests()
        if self._too_many_turns(messages):
            self._abort()
            return Look(ending=oc.Failed(f"no final answer after {self._limits.max_turns} turns"))
        reply = oc.reply_of(messages)
        answered = reply.user_messages > asked and reply.last is not None and reply.last.info.done
        if busy:
            return Look(reply=reply)
        if not answered or reply.last is None:
            return Look(reply=reply, unanswered=True)
        if reply.final:
            return Look(reply=reply, ending=oc.ending_of(reply))
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
            self._api.abort(self._id)
            while self._api.busy(self._id) and time.monotonic() < deadline:
                self._wait_briefly()
            self._sync(self._api.messages(self._id))

    def _wait_briefly(self) -> None:
        if self._feed is not None:
            self._feed.wait(min(self._options.poll_s, 0.2))

    @property
    def _id(self) -> str:
        assert self._link is not None
        return self._link.external_id

    @property
    def _api(self) -> OpenCodeApi:
        assert self._opencode is not None, "only while the session runs"
        return self._opencode

    def _answer_requests(self) -> None:
        """Reject the permission requests and questions of our session (and its children)."""
        for kind in ("permission", "question"):
            for request in self._api.pending(kind):
                if self._ours(str(request.get("sessionID", ""))):
                    with contextlib.suppress(OpenCodeError):
                        self._api.reject(kind, str(request.get("id")), REJECTION)

    def _ours(self, session_id: str) -> bool:
        if session_id not in (self._id, *self._family):
            self._family = self._api.children(self._id)
        return session_id in (self._id, *self._family)

    # --- the log -----------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        stamped = self._record(event, self.brief.actor)
        self.state = apply_session(self.state, stamped)
        if isinstance(stamped, ev.SessionLinked):
            self._link = stamped


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
