"""Scripts for whole missions: what the scripted model says as planner, workers and reviewer.

A :class:`Playbook` describes a mission as data (the plan of each iteration, what each task
writes, each iteration's verdict) and turns it into a :data:`Script` for the
:class:`ScriptedModelServer`.  It plays the role protocol exactly as a model must: tools,
then the finishing tool.  Tests, benchmarks and the demo's recording use it; a log replay
uses :func:`script_from_log` instead, which answers each (session, turn) with the response
recorded in a mission log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ocactors.actors.models.scripted_script import Fault, Script, ScriptedRequest, ScriptError, Turn
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import Record

SESSION_HEADER = "x-ocactors-session"
TASK_HEADER = "x-ocactors-task"


@dataclass(frozen=True)
class TaskPlay:
    """One task of a plan and the files its worker writes (path -> content)."""

    id: str
    files: Mapping[str, str]
    depends_on: Sequence[str] = ()
    title: str = ""
    worker_delay_s: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """A review: approve, or findings (file, problem)."""

    approved: bool
    findings: Sequence[tuple[str, str]] = ()


@dataclass
class Playbook:
    """A mission as data; ``plans[i]`` and ``verdicts[i]`` are iteration i+1's."""

    plans: Sequence[Sequence[TaskPlay]]
    verdicts: Sequence[Verdict]
    check_command: str | None = None
    faults: Mapping[str, Fault] = field(default_factory=dict)

    def script(self) -> Script:
        """planner / worker:* / reviewer entries as callables of the request."""
        return {"planner": self._planner, "reviewer": self._reviewer, "worker:*": self._worker}

    def _iteration(self, request: ScriptedRequest) -> int:
        """Which iteration a planner or reviewer session belongs to (from its session id)."""
        session = request.headers.get(SESSION_HEADER, "")
        number = session.split("#", 1)[-1].split(".", 1)[0]
        return int(number) if number.isdigit() else 1

    def _planner(self, request: ScriptedRequest) -> Turn:
        plan = self.plans[min(self._iteration(request), len(self.plans)) - 1]
        tasks = [
            {
                "id": task.id,
                "title": task.title or f"write {', '.join(task.files)}",
                "files": list(task.files),
                "instructions": f"Write {', '.join(task.files)}.",
                "depends_on": list(task.depends_on),
            }
            for task in plan
        ]
        return Turn(
            tool_calls=[("submit_plan", {"tasks": tasks})], fault=self.faults.get("planner")
        )

    def _task(self, task_id: str) -> TaskPlay:
        for plan in self.plans:
            for task in plan:
                if task.id == task_id:
                    return task
        raise ScriptError(f"the playbook has no task {task_id!r}")

    def _worker(self, request: ScriptedRequest) -> Turn:
        task = self._task(request.headers.get(TASK_HEADER, request.actor.split(":", 1)[-1]))
        fault = self.faults.get(request.actor) if request.turn == 1 else None
        if request.turn == 1:
            calls = [("write_file", {"path": p, "content": c}) for p, c in task.files.items()]
            return Turn(tool_calls=calls, delay_s=task.worker_delay_s, fault=fault)
        return Turn(tool_calls=[("finish_task", {"summary": f"wrote {', '.join(task.files)}"})])

    def _reviewer(self, request: ScriptedRequest) -> Turn:
        if request.turn == 1 and self.check_command:
            return Turn(tool_calls=[("run_command", {"command": self.check_command})])
        verdict = self.verdicts[min(self._iteration(request), len(self.verdicts)) - 1]
        findings = [{"file": f, "problem": p} for f, p in verdict.findings]
        args = {"approved": verdict.approved, "findings": findings}
        return Turn(tool_calls=[("submit_review", args)])


def script_from_log(events: Iterable[Record], delay_s: float = 0.0) -> Script:
    """Answer every (session, turn) with the response recorded in a mission log, exactly:
    text, reasoning (in the field it came in, with OpenRouter's details and Anthropic's
    thinking blocks), refusal, tool-call ids, raw argument text and finish reason as
    recorded, so a mission from a provider with random ids (``call_8fK2...``) reruns to the
    same events. (Thinking blocks only travel over the Anthropic protocol.)

    ``delay_s`` paces the replay (each answer waits that long), so a person can watch it.
    """
    answers: dict[tuple[str, int], ev.ChatMessage] = {}
    finishes: dict[tuple[str, int], str] = {}
    for event in events:
        if isinstance(event, ev.ModelResponded):
            answers[(event.session, event.turn)] = event.message
            if event.finish_reason:
                finishes[(event.session, event.turn)] = event.finish_reason

    def play(request: ScriptedRequest) -> Turn:
        key = (request.headers.get(SESSION_HEADER, ""), request.turn)
        message = answers.get(key)
        if message is None:
            raise ScriptError(f"no recorded response for session {key[0]!r} turn {key[1]}")
        return Turn(
            content=message.content,
            tool_calls=[(call.name, call.arguments) for call in message.tool_calls],
            reasoning=message.reasoning,
            delay_s=delay_s,
            call_ids=[call.id for call in message.tool_calls],
            finish_reason=finishes.get(key),
            reasoning_field=message.reasoning_field,
            reasoning_details=message.reasoning_details,
            refusal=message.refusal,
            thinking_blocks=message.thinking_blocks,
        )

    return {"*": play}
