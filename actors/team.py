"""Planner, Worker, Reviewer and Verifier: pykka actors that each run one piece of work.

Each role actor lives for one session: it receives :class:`RunSession`, builds its brief from
the immutable mission state in the message, runs the agent session in its own thread, tells
the Commander how it ended and stops.  A crash (any exception escaping the session) reaches
the Commander as :class:`ActorDied` through ``on_failure``; the Commander rebuilds a fresh
actor from the session's events in the log.  Threads are daemons so a stopping mission never
waits on a model request in flight.
"""

from __future__ import annotations

import contextlib
import functools
from types import TracebackType
from typing import Any

import msgspec
import pykka

from ocactors.actors.context import MissionContext
from ocactors.actors.messages import (
    ActorDied,
    ChecksEnded,
    RunChecks,
    RunSession,
    SessionEnded,
    result_for,
    task_of,
)
from ocactors.actors.roles import planner_brief, review_tool, reviewer_brief, worker_brief
from ocactors.actors.session import RunsSession, SessionBrief, SessionInterrupted
from ocactors.actors.verify import describe_project, run_checks
from ocactors.events import catalogue as ev
from ocactors.tools import (
    LeaseReport,
    Toolbox,
    ToolContext,
    Workspace,
    planner_tools,
    reviewer_tools,
    worker_tools,
)
from ocactors.tools.listing import repo_map


class SessionActor(pykka.ThreadingActor):
    """Runs one agent session; subclasses say which role and which brief."""

    use_daemon_thread = True
    role = ""

    def __init__(self, ctx: MissionContext, commander: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.ctx = ctx
        self.commander = commander
        self.job: RunSession | None = None

    def on_receive(self, message: Any) -> Any:
        """Runs on this actor's own thread: the whole session, then one report."""
        if isinstance(message, RunSession):
            self.job = message
            self.commander.tell(self._run(message))
            self.actor_ref.stop(block=False)
        return None

    def _run(self, job: RunSession) -> SessionEnded:
        session = self._session(job)
        try:
            outcome = session.run()
        except SessionInterrupted as stop:
            detail = self.ctx.interrupted(job.session, job.actor, stop.reason)
            return SessionEnded(job.actor, job.session, interrupted=stop.reason, detail=detail)
        if outcome.result is None:
            return SessionEnded(job.actor, job.session, failure=outcome.failure)
        try:
            result = result_for(self.role, outcome.result)
        except msgspec.ValidationError as error:
            failure = f"the session's result does not have the {self.role}'s shape: {error}"
            return SessionEnded(job.actor, job.session, failure=failure)
        return SessionEnded(job.actor, job.session, result=result)

    def _session(self, job: RunSession) -> RunsSession:
        return self.ctx.session_factory(
            self.brief(job),
            client=self.ctx.clients[self.role],
            toolbox=self.toolbox(job),
            record=self.ctx.recorder(job.generation),
            mission=self.ctx.mission,
            gate=self.ctx.gate(job.cancel, job.generation),
            limits=self.ctx.limits,
            prior=job.prior,
        )

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Runs on this actor's thread after a crash: tell the Commander, who replaces us."""
        if self.job is not None:
            error = f"{getattr(exception_type, '__name__', 'error')}: {exception_value}"
            self.commander.tell(ActorDied(self.job.actor, self.job.session, error))

    def brief(self, job: RunSession) -> SessionBrief:
        """The session's brief; each role overrides it."""
        return SessionBrief(job.session, self.role, self.role, "", "", review_tool())

    def toolbox(self, job: RunSession) -> Toolbox:
        """The tools of this role: read-only unless a role says otherwise."""
        return Toolbox(planner_tools(self.ctx.web), self._context(job, None))

    def _context(self, job: RunSession, writable: list[str] | None) -> ToolContext:
        workspace = Workspace(
            self.ctx.workspace, writable=writable, on_before_write=self.ctx.on_before_write
        )
        return ToolContext(
            workspace=workspace,
            shell=self.ctx.shell,
            web=self.ctx.web,
            http=self.ctx.http,
            owner=job.actor,
            on_violation=functools.partial(self._violated, job),
        )

    def _violated(self, job: RunSession, command: str, report: LeaseReport) -> None:
        """Runs on this actor's thread, inside run_command: record what was put back."""
        event = ev.LeaseViolated(
            session=job.session,
            task_id=task_of(job.actor) or None,
            command=command,
            paths=list(report.paths),
            kinds=[change.kind for change in report.changes],
        )
        with contextlib.suppress(SessionInterrupted):
            self.ctx.recorder(job.generation)(event, job.actor)


class PlannerActor(SessionActor):
    """Breaks the goal (or the review's findings) into file-level tasks."""

    role = "planner"

    def brief(self, job: RunSession) -> SessionBrief:
        return planner_brief(job.state, job.session, repo_map(self.ctx.workspace))


class WorkerActor(SessionActor):
    """Builds one task, writing only the files its lease names."""

    role = "worker"

    def brief(self, job: RunSession) -> SessionBrief:
        task = job.state.tasks[task_of(job.actor)]
        history = self.ctx.history
        edits = history.user_changed(task.spec.files) if history is not None else []
        return worker_brief(job.state, task, job.session, self.ctx.workspace, edits)

    def toolbox(self, job: RunSession) -> Toolbox:
        files = list(job.state.tasks[task_of(job.actor)].spec.files)
        return Toolbox(worker_tools(self.ctx.web), self._context(job, files))


class ReviewerActor(SessionActor):
    """Runs the checks, reads the result and gives a verdict."""

    role = "reviewer"

    def brief(self, job: RunSession) -> SessionBrief:
        checks = describe_project(self.ctx.workspace, job.state.settings.verify_command)
        history = self.ctx.history
        stat = history.diff(stat=True) if history is not None else ""
        return reviewer_brief(job.state, job.session, checks, diff_stat=stat)

    def toolbox(self, job: RunSession) -> Toolbox:
        return Toolbox(reviewer_tools(self.ctx.web), self._context(job, None))


class VerifierActor(pykka.ThreadingActor):
    """Runs the project's checks off the Commander's thread and reports the result."""

    use_daemon_thread = True

    def __init__(self, ctx: MissionContext, commander: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.ctx = ctx
        self.commander = commander

    def on_receive(self, message: Any) -> Any:
        """Runs on this actor's thread: the command, then one report, then stop."""
        if isinstance(message, RunChecks):
            self.commander.tell(self._verify(message))
            self.actor_ref.stop(block=False)
        return None

    def _verify(self, job: RunChecks) -> ChecksEnded:
        """The checks' result; a failure to even run them is a failed check, never a hang."""
        try:
            result = run_checks(self.ctx.workspace, job.checks, self.ctx.shell, self.ctx.stopping)
        except Exception as error:
            note = f"the checks could not run: {type(error).__name__}: {error}"
            return ChecksEnded(
                job.iteration, "; ".join(c.command for c in job.checks), 125, note, 0.0
            )
        return ChecksEnded(
            job.iteration, result.command, result.exit_code, result.output, result.duration_s
        )


ROLE_ACTORS: dict[str, type[SessionActor]] = {
    "planner": PlannerActor,
    "worker": WorkerActor,
    "reviewer": ReviewerActor,
}
