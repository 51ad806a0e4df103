"""Events in a few words, for people: the line format shared by tail, the live view and monitor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ocactors.actors.prices import usd
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import Event, UnknownEvent, event_type

NOTABLE = frozenset(
    {
        "mission.started",
        "mission.resumed",
        "mission.sealed",
        "mission.failed",
        "mission.stopped",
        "control.received",
        "iteration.started",
        "plan.accepted",
        "plan.failed",
        "task.started",
        "task.finished",
        "task.failed",
        "review.submitted",
        "review.failed",
        "verify.started",
        "verify.finished",
        "actor.crashed",
        "model.retried",
        "model.failed",
        "session.compacted",
        "session.nudged",
        "session.failed",
    }
)


def describe(event: Event | UnknownEvent) -> str:
    """What happened, in a few words."""
    writer = _WRITERS.get(type(event))
    return writer(event) if writer else _generic(event)


def line(event: Event | UnknownEvent) -> str:
    """``HH:MM:SS  #seq  actor  type  words`` — the plain-text form of one event."""
    clock = event.ts[11:19] if len(event.ts) >= 19 else event.ts
    return f"{clock}  #{event.seq:<5} {event.actor:<14} {event_type(event):<18} {describe(event)}"


def _short(text: str, limit: int = 100) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _generic(event: Event | UnknownEvent) -> str:
    if isinstance(event, UnknownEvent):
        return "(an event type this version does not know)"
    return ""


def _sealed(e: ev.MissionSealed) -> str:
    """The Commander's summary already counts iterations; say it once."""
    return f"SEALED: {e.summary}" if e.summary else f"SEALED after {e.iterations} iteration(s)"


def _control(e: ev.ControlReceived) -> str:
    """``ocactors stop`` (reason ``user``) versus a stop this process asked for (a signal)."""
    reason = str(e.args.get("reason", ""))
    who = "another process" if e.source_pid is None else f"pid {e.source_pid}"
    if reason in ("", "user"):
        return f"`ocactors {e.command}` from {who}"
    return f"{e.command}: {reason} (in {who})"


def _plan(e: ev.PlanAccepted) -> str:
    ids = ", ".join(f"{t.id}({', '.join(t.files)})" for t in e.tasks[:8])
    more = f" +{len(e.tasks) - 8} more" if len(e.tasks) > 8 else ""
    return f"{len(e.tasks)} tasks: {ids}{more}"


def _review(e: ev.ReviewSubmitted) -> str:
    if e.approved:
        return "approved"
    first = e.findings[0] if e.findings else None
    note = f": {first.file}: {_short(first.problem, 60)}" if first else ""
    return f"rejected, {len(e.findings)} finding(s){note}"


def _verify(e: ev.VerifyFinished) -> str:
    verdict = "passed" if e.passed else f"FAILED (exit {e.exit_code})"
    return f"`{e.command or '(none)'}` {verdict} in {e.duration_s:.1f}s"


def _responded(e: ev.ModelResponded) -> str:
    """``turn 3: read_file (1234 tok, 80% cached, $0.0012, 540 ms)``."""
    calls = ", ".join(c.name for c in e.message.tool_calls) or _short(e.message.content, 60)
    usage = e.usage
    notes = [f"{usage.prompt_tokens + usage.completion_tokens} tok"]
    if usage.cached_tokens and usage.prompt_tokens:
        notes.append(f"{usage.cached_tokens * 100 // usage.prompt_tokens}% cached")
    if usage.cost_usd is not None:
        notes.append(usd(usage.cost_usd))
    notes.append(f"{e.latency_ms:.0f} ms")
    return f"turn {e.turn}: {calls} ({', '.join(notes)})"


_WRITERS: dict[type, Callable[[Any], str]] = {
    ev.MissionStarted: lambda e: f"goal: {_short(e.goal)}",
    ev.MissionResumed: lambda e: f"resumed by pid {e.pid} {e.reason}".rstrip(),
    ev.MissionSealed: _sealed,
    ev.MissionFailed: lambda e: f"FAILED ({e.reason}) {_short(e.detail)}",
    ev.MissionStopped: lambda e: f"STOPPED ({e.reason}) {_short(e.detail)}",
    ev.ControlReceived: _control,
    ev.IterationStarted: lambda e: f"iteration {e.iteration}",
    ev.PlanRequested: lambda e: f"plan wanted ({len(e.findings)} findings to fix)",
    ev.PlanAccepted: _plan,
    ev.PlanFailed: lambda e: _short(e.reason),
    ev.LeaseGranted: lambda e: f"{e.task_id} holds {', '.join(e.files)}",
    ev.LeaseReleased: lambda e: f"{e.task_id} gave back {', '.join(e.files)}",
    ev.TaskStarted: lambda e: f"{e.task_id} attempt {e.attempt} in {e.session}",
    ev.TaskFinished: lambda e: f"{e.task_id} done: {_short(e.summary, 80)}",
    ev.TaskFailed: lambda e: f"{e.task_id} failed: {_short(e.reason, 80)}",
    ev.ReviewRequested: lambda e: f"review of iteration {e.iteration}",
    ev.ReviewSubmitted: _review,
    ev.ReviewFailed: lambda e: _short(e.reason),
    ev.VerifyStarted: lambda e: f"running `{e.command or '(none)'}`",
    ev.VerifyFinished: _verify,
    ev.ActorCrashed: lambda e: f"{e.target} crashed ({_short(e.error, 60)}), restart {e.restarts}",
    ev.SessionStarted: lambda e: f"{e.role} session {e.session} on {e.model}",
    ev.ModelRequested: lambda e: f"turn {e.turn} -> {e.model}",
    ev.ModelResponded: _responded,
    ev.ModelRetried: lambda e: f"retry {e.attempt} in {e.delay_s:.1f}s: {_short(e.error, 60)}",
    ev.ModelFailed: lambda e: f"turn {e.turn}: {_short(e.error, 80)}",
    ev.ToolCalled: lambda e: f"{e.name}({_short(e.arguments, 70)})",
    ev.ToolReturned: lambda e: ("error: " if e.is_error else "") + _short(e.output, 70),
    ev.SessionNudged: lambda e: f"turn {e.turn}: {e.reason}",
    ev.SessionCompacted: lambda e: f"turn {e.turn}: {e.dropped} messages summarised",
    ev.SessionFinished: lambda e: f"{e.session} finished",
    ev.SessionFailed: lambda e: f"{e.session} failed: {_short(e.reason, 80)}",
    ev.SessionInterrupted: lambda e: f"{e.session} interrupted ({e.reason})",
    ev.SessionLinked: lambda e: f"{e.session} runs as {e.backend} session {e.external_id}",
    ev.LeaseViolated: lambda e: f"put back {', '.join(e.paths)} (outside the lease)",
}
