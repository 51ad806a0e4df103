"""Every event a mission can record, in one tagged union.

Schema evolution rules (the log outlives the code that wrote it):

- an event's ``type`` tag never changes meaning and is never reused;
- a new field always has a default, so older logs still decode;
- a field's type never changes; a new meaning gets a new field name;
- a type this version does not know is kept as an :class:`UnknownEvent`,
  never a crash, so a newer log can still be read and tailed;
- ``MissionStarted.version`` names the format; readers compare it with
  :data:`FORMAT_VERSION` to warn about logs from the future.

The envelope (``seq``, ``ts``, ``mission``, ``actor``, ``cause``) is filled in by
the journal when the event is appended, so producers leave it at its defaults.
"""

from __future__ import annotations

from typing import Any

import msgspec

FORMAT_VERSION = 1


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True):
    """Envelope shared by all events; subclasses carry the payload."""

    seq: int = 0
    ts: str = ""
    mission: str = ""
    actor: str = ""
    cause: int | None = None


# --- payload parts --------------------------------------------------------------------


class ToolCall(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A tool call as the model asked for it; ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One conversation turn in a provider-neutral shape (OpenAI-like roles).

    ``reasoning`` is the model's thinking as text (shown, counted); what a provider
    requires back verbatim lives beside it, exactly as it came: ``reasoning_field`` names
    the OpenAI-compatible field the text came in (``reasoning_content`` for DeepSeek,
    llama.cpp, older vLLM; ``reasoning`` for OpenRouter, Ollama, newer vLLM), so it is
    sent back under that name; ``reasoning_details`` are OpenRouter's structured reasoning
    items; ``thinking_blocks`` are Anthropic's ``thinking`` / ``redacted_thinking`` blocks
    in order, each with its own ``signature`` / ``data``. ``refusal`` is the text of an
    OpenAI refusal (also put in ``content`` when there is no other content).
    """

    role: str
    content: str = ""
    tool_calls: list[ToolCall] = []
    tool_call_id: str | None = None
    name: str | None = None
    reasoning: str | None = None
    reasoning_signature: str | None = None
    reasoning_field: str | None = None
    reasoning_details: list[dict[str, Any]] = []
    thinking_blocks: list[dict[str, Any]] = []
    refusal: str | None = None


class Usage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Tokens a model turn used; ``estimated`` when the provider did not say.

    ``prompt_tokens`` counts every input token; ``cached_tokens`` (read from the provider's
    prompt cache) and ``cache_write_tokens`` (written to it) are parts of it, priced apart.
    ``cost_usd`` is the turn's price in dollars as computed when it was recorded (None: no
    price known for the model), so a replay reads the same figure the live run showed.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One file-level task of a plan."""

    id: str
    title: str
    files: list[str]
    instructions: str = ""
    depends_on: list[str] = []


class Finding(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A problem the reviewer found; becomes the seed of a fix task."""

    file: str
    problem: str
    task_id: str | None = None


class CheckSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One of the project's checks: a name (pytest, npm, make) and the command that runs it."""

    name: str
    command: str


class MissionSettings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The knobs a mission was started with (recorded so a resume keeps them)."""

    verify_command: str | None = None
    max_iterations: int = 20
    parallel: int = 10
    max_sessions: int = 50
    max_tokens: int | None = None
    max_cost: float | None = None
    session_ttl_s: float = 3600.0
    models: dict[str, str] = {}


# --- mission lifecycle (actor: commander) ---------------------------------------------


class MissionStarted(Event, tag="mission.started", frozen=True, kw_only=True):
    """A mission began: its goal, workspace and settings.

    ``sandbox`` is the backend that confines its commands ("bwrap", "landlock", or "off"
    when the user said ``--sandbox off``), ``command_network`` whether commands may use the
    network, ``environment`` how the project runs (its virtualenv, its package manager).
    """

    version: int
    goal: str
    workspace: str
    settings: MissionSettings = MissionSettings()
    sandbox: str = ""
    command_network: bool = False
    environment: str = ""


class MissionResumed(Event, tag="mission.resumed", frozen=True, kw_only=True):
    """A new process took over the log and carries the mission on (``sandbox``: as started)."""

    pid: int
    reason: str = ""
    settings: MissionSettings | None = None
    sandbox: str = ""
    command_network: bool = False
    environment: str = ""


class MissionSealed(Event, tag="mission.sealed", frozen=True, kw_only=True):
    """Final: every task done, the reviewer approved and verify passed.

    ``unverified``: no checks ran, because the user said ``--verify none``.
    """

    iterations: int
    summary: str = ""
    unverified: bool = False


class MissionFailed(Event, tag="mission.failed", frozen=True, kw_only=True):
    """Final: the mission cannot succeed; ``reason`` is a short code."""

    reason: str
    detail: str = ""


class MissionStopped(Event, tag="mission.stopped", frozen=True, kw_only=True):
    """Final until resumed: stopped by a person, a signal or the budget."""

    reason: str
    detail: str = ""


class HistoryBegan(Event, tag="history.began", frozen=True, kw_only=True):
    """This run of the mission keeps its history: git (``ref``, baseline ``commit``) or files.

    ``reason`` says in one line why git could not be used.  Recorded at every start and resume.
    """

    kind: str
    commit: str | None = None
    ref: str | None = None
    reason: str | None = None


class ControlReceived(Event, tag="control.received", frozen=True, kw_only=True):
    """A command from another process (via the control file) was taken in."""

    command: str
    args: dict[str, Any] = {}
    source_pid: int | None = None


class IterationStarted(Event, tag="iteration.started", frozen=True, kw_only=True):
    """A plan-build-review round began."""

    iteration: int


class PlanRequested(Event, tag="plan.requested", frozen=True, kw_only=True):
    """The commander asked the planner for tasks (fix tasks when findings exist)."""

    iteration: int
    findings: list[Finding] = []


class PlanAccepted(Event, tag="plan.accepted", frozen=True, kw_only=True):
    """A valid plan was adopted; its tasks join the schedule."""

    iteration: int
    tasks: list[TaskSpec]


class PlanFailed(Event, tag="plan.failed", frozen=True, kw_only=True):
    """The planner could not produce a valid plan."""

    iteration: int
    reason: str


class LeaseGranted(Event, tag="lease.granted", frozen=True, kw_only=True):
    """A task became the only writer of its files."""

    task_id: str
    files: list[str]


class LeaseReleased(Event, tag="lease.released", frozen=True, kw_only=True):
    """A task gave its files back."""

    task_id: str
    files: list[str]


class LeaseViolated(Event, tag="lease.violated", frozen=True, kw_only=True):
    """A command changed files outside its lease; they were put back as they were before it.

    Written by the session (or the verifier) whose command it was; ``paths`` are relative to
    the workspace, ``kinds`` say created, modified or deleted for each.
    """

    session: str = ""
    task_id: str | None = None
    command: str = ""
    paths: list[str] = []
    kinds: list[str] = []


class TaskStarted(Event, tag="task.started", frozen=True, kw_only=True):
    """A task went to a worker session."""

    task_id: str
    attempt: int
    session: str


class TaskFinished(Event, tag="task.finished", frozen=True, kw_only=True):
    """A worker finished its task."""

    task_id: str
    summary: str = ""


class TaskCommitted(Event, tag="task.committed", frozen=True, kw_only=True):
    """A finished task's files were committed on the mission's history.

    ``commit`` is a git commit on ``refs/ocactors/<mission>`` or ``files:NNNN`` for the file
    history; empty with ``error`` when the commit could not be made (the mission goes on).
    """

    task_id: str
    commit: str = ""
    error: str = ""


class TaskFailed(Event, tag="task.failed", frozen=True, kw_only=True):
    """A task attempt failed; ``retryable`` says whether the commander may retry."""

    task_id: str
    reason: str
    retryable: bool = True


class ReviewRequested(Event, tag="review.requested", frozen=True, kw_only=True):
    """The commander asked the reviewer to check the whole result."""

    iteration: int


class ReviewSubmitted(Event, tag="review.submitted", frozen=True, kw_only=True):
    """The reviewer's verdict."""

    iteration: int
    approved: bool
    findings: list[Finding] = []


class ReviewFailed(Event, tag="review.failed", frozen=True, kw_only=True):
    """The reviewer's session ended without a verdict."""

    iteration: int
    reason: str


class VerifyStarted(Event, tag="verify.started", frozen=True, kw_only=True):
    """The commander started the project's own checks.

    ``checks`` are the named commands, every one of which must pass; ``command`` says them in
    one line.  No checks at all is not a pass; ``command`` is ``none`` when the user chose to
    seal on the reviewer's verdict alone (``--verify none``).
    """

    iteration: int
    command: str
    checks: list[CheckSpec] = []


class VerifyFinished(Event, tag="verify.finished", frozen=True, kw_only=True):
    """The project's checks finished; ``output`` keeps the tail."""

    iteration: int
    command: str
    exit_code: int
    passed: bool
    output: str = ""
    duration_s: float = 0.0


class ActorCrashed(Event, tag="actor.crashed", frozen=True, kw_only=True):
    """An actor died unexpectedly; the commander decides what replaces it."""

    target: str
    error: str
    session: str | None = None
    restarts: int = 0


# --- agent sessions (actor: planner, worker:<task>, reviewer) -------------------------


class SessionStarted(Event, tag="session.started", frozen=True, kw_only=True):
    """An agent session began: its role, model and opening messages."""

    session: str
    role: str
    model: str
    task_id: str | None = None
    messages: list[ChatMessage] = []


class SessionLinked(Event, tag="session.linked", frozen=True, kw_only=True):
    """The session runs in another agent: ``backend`` (``opencode``) session ``external_id``.

    Recorded after ``session.started``, and again when a resume had to start a new one there;
    a resume re-attaches to the last link.  ``turns`` is how many turns the session had before
    this link, so the linked session's Nth model step is recorded as turn ``turns + N``.
    """

    session: str
    backend: str
    external_id: str
    url: str = ""
    turns: int = 0


class ModelRequested(Event, tag="model.requested", frozen=True, kw_only=True):
    """Intent: a model request is about to go out (``messages`` are the new ones)."""

    session: str
    turn: int
    model: str
    messages: list[ChatMessage] = []


class ModelResponded(Event, tag="model.responded", frozen=True, kw_only=True):
    """The model answered a turn."""

    session: str
    turn: int
    message: ChatMessage
    usage: Usage = Usage()
    finish_reason: str = ""
    latency_ms: float = 0.0


class ModelRetried(Event, tag="model.retried", frozen=True, kw_only=True):
    """A model request failed in a way worth retrying; another attempt follows."""

    session: str
    turn: int
    attempt: int
    error: str
    status: int | None = None
    delay_s: float = 0.0


class ModelFailed(Event, tag="model.failed", frozen=True, kw_only=True):
    """A model request failed for good."""

    session: str
    turn: int
    error: str


class ToolCalled(Event, tag="tool.called", frozen=True, kw_only=True):
    """Intent: a tool is about to run with these raw arguments."""

    session: str
    turn: int
    call_id: str
    name: str
    arguments: str


class ToolReturned(Event, tag="tool.returned", frozen=True, kw_only=True):
    """A tool's result as the model will see it."""

    session: str
    call_id: str
    name: str
    output: str
    is_error: bool = False


class SessionNudged(Event, tag="session.nudged", frozen=True, kw_only=True):
    """The model did not call a tool; it was told to."""

    session: str
    turn: int
    reason: str
    message: ChatMessage | None = None


class SessionCompacted(Event, tag="session.compacted", frozen=True, kw_only=True):
    """Older turns were replaced by a summary to fit the context window."""

    session: str
    turn: int
    dropped: int
    summary: str
    kept: list[ChatMessage] = []


class SessionFinished(Event, tag="session.finished", frozen=True, kw_only=True):
    """The model called its role's final tool with valid arguments."""

    session: str
    result: dict[str, Any] = {}


class SessionFailed(Event, tag="session.failed", frozen=True, kw_only=True):
    """The session ended without a result."""

    session: str
    reason: str


class SessionInterrupted(Event, tag="session.interrupted", frozen=True, kw_only=True):
    """The session was stopped from outside before it ended.

    ``reason``: ``ttl`` (it ran past its time limit), ``budget``, ``stopped`` (the mission
    stopped), or the mission's own ending (``sealed``, ``failed``).  A session interrupted by
    a stop or the budget may be continued by ``ocactors resume``; it is no longer running.
    """

    session: str
    reason: str
    detail: str = ""


AnyEvent = (
    MissionStarted
    | MissionResumed
    | MissionSealed
    | MissionFailed
    | MissionStopped
    | HistoryBegan
    | ControlReceived
    | IterationStarted
    | PlanRequested
    | PlanAccepted
    | PlanFailed
    | LeaseGranted
    | LeaseReleased
    | LeaseViolated
    | TaskStarted
    | TaskFinished
    | TaskCommitted
    | TaskFailed
    | ReviewRequested
    | ReviewSubmitted
    | ReviewFailed
    | VerifyStarted
    | VerifyFinished
    | ActorCrashed
    | SessionStarted
    | SessionLinked
    | ModelRequested
    | ModelResponded
    | ModelRetried
    | ModelFailed
    | ToolCalled
    | ToolReturned
    | SessionNudged
    | SessionCompacted
    | SessionFinished
    | SessionFailed
    | SessionInterrupted
)

FINAL_TYPES = frozenset({"mission.sealed", "mission.failed", "mission.stopped"})


class UnknownEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event of a type this version does not know, kept whole as ``raw``."""

    seq: int = 0
    ts: str = ""
    mission: str = ""
    actor: str = ""
    cause: int | None = None
    type: str = ""
    raw: dict[str, Any] = {}


Record = Event | UnknownEvent
"""Anything a log line can hold: a known event or a kept unknown one."""


def event_type(event: Record) -> str:
    """The ``type`` tag of any event, known or not."""
    if isinstance(event, UnknownEvent):
        return event.type
    return str(type(event).__struct_config__.tag)


KNOWN_TYPES: frozenset[str] = frozenset(str(cls.__struct_config__.tag) for cls in AnyEvent.__args__)
