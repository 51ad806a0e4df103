"""Worker sessions run as real OpenCode sessions against a loopback scripted model.

One ``opencode serve`` (the real binary, in a tmp ``HOME``) serves the whole module; each test
has its own workspace under it (OpenCode's ``?directory=``) and its own task id, which the
scripted model reads from the prompt to choose its turns.  The model calls OpenCode's own
tools (``write``, ``bash``).  Skipped, saying so, only when ``opencode`` is not on PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ocactors.actors.models import ScriptedModelServer, Turn
from ocactors.actors.models.playbook import Playbook, TaskPlay, Verdict
from ocactors.actors.models.scripted import ScriptedRequest
from ocactors.actors.models.scripted_script import ScriptEntry, choose_turn
from ocactors.actors.opencode_server import (
    OpenCodeNotFound,
    OpenCodeServer,
    OpenCodeServerDied,
    OpenCodeTooOld,
    OpenCodeUnavailable,
)
from ocactors.actors.opencode_session import (
    OpenCodeOptions,
    OpenCodeSession,
    opencode_session_factory,
)
from ocactors.actors.roles import finish_tool
from ocactors.actors.session import (
    AgentSession,
    Recorder,
    SessionBrief,
    SessionInterrupted,
    SessionLimits,
)
from ocactors.actors.session_state import fold_session
from ocactors.events import Journal, create_mission_dir, read_events
from ocactors.events import catalogue as ev
from ocactors.events.catalogue import Event, MissionSettings, Record
from ocactors.tools import LeaseGuard, Toolbox, ToolContext, Workspace
from tests._mission_helpers import MissionHarness

OPENCODE = shutil.which("opencode")
pytestmark = [
    pytest.mark.skipif(
        OPENCODE is None,
        reason="OpenCode not found on PATH: `npm install -g opencode-ai@1.18.33` to run these",
    ),
    pytest.mark.timeout(60),
]
LIMITS = SessionLimits()
OPTIONS = OpenCodeOptions(provider_id="scripted", model_id="scripted", poll_s=0.2)
TASK = re.compile(r"Your task (\w+):")
Script = Callable[[int], Turn]


@dataclass
class Model:
    """The scripted model: per task id, a function from the step number (0-based) to a Turn."""

    scripts: dict[str, Script] = field(default_factory=dict)
    ocactors: Mapping[str, ScriptEntry] = field(default_factory=dict)
    """What ocactors' own sessions (planner, reviewer) are answered: they send their actor."""
    asked: dict[str, int] = field(default_factory=dict)
    system: dict[str, str] = field(default_factory=dict)
    answered: dict[tuple[str, int], threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: ScriptedRequest) -> Turn:
        if "x-ocactors-actor" in request.headers:
            return choose_turn(self.ocactors, request)
        task = next((m[1] for m in map(TASK.search, _texts(request)) if m), "?")
        step = sum(m.role == "assistant" for m in request.messages)
        with self.lock:
            self.asked[task] = self.asked.get(task, 0) + 1
            self.system[task] = "\n".join(m.content for m in request.messages if m.role == "system")
        turn = self.scripts[task](step)
        self.step(task, step).set()
        return turn

    def step(self, task: str, step: int) -> threading.Event:
        """Set once the model has answered ``task``'s step ``step``."""
        with self.lock:
            return self.answered.setdefault((task, step), threading.Event())


def _texts(request: ScriptedRequest) -> list[str]:
    return [m.content for m in request.messages if m.role == "user"]


@pytest.fixture(scope="module")
def model() -> Iterator[tuple[Model, ScriptedModelServer]]:
    script = Model()
    with ScriptedModelServer({"*": script}) as server:
        yield script, server


def opencode_env(root: Path) -> dict[str, str]:
    """OpenCode kept away from the real home: config, data, cache and state in tmp dirs."""
    env = {"OPENCODE_DISABLE_AUTOUPDATE": "1", "OPENCODE_DISABLE_MODELS_FETCH": "1"}
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        path = root / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    return env


def write_config(root: Path, base_url: str) -> None:
    """A project ``opencode.json`` declaring the scripted model as a provider."""
    config = {
        "provider": {
            "scripted": {
                "npm": "@ai-sdk/openai-compatible",
                "options": {"baseURL": base_url, "apiKey": "unused"},
                "models": {"scripted": {"name": "scripted"}},
            }
        }
    }
    (root / "opencode.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, model: tuple[Model, ScriptedModelServer]
) -> Iterator[OpenCodeServer]:
    root = tmp_path_factory.mktemp("opencode")
    write_config(root, model[1].base_url)
    with OpenCodeServer(root, env=opencode_env(root / "home")) as started:
        yield started


@dataclass
class Harness:
    """One test's workspace, log and lease guard on the module's server."""

    root: Path
    server: OpenCodeServer
    model: Model
    journal: Journal
    guard: LeaseGuard
    files: list[str]
    task: str

    def record(self, event: Event, actor: str) -> Event:
        return self.journal.append(event, actor=actor).event

    def session(
        self,
        *,
        prior: tuple[Record, ...] = (),
        gate: Callable[[], None] = lambda: None,
        record: Recorder | None = None,
        limits: SessionLimits = LIMITS,
    ) -> OpenCodeSession:
        workspace = Workspace(self.root, writable=self.files)
        return OpenCodeSession(
            brief(self.root, self.task, self.files),
            server=self.server,
            toolbox=Toolbox([], ToolContext(workspace)),
            record=record or self.record,
            gate=gate,
            limits=limits,
            prior=prior,
            guard=self.guard,
            options=OPTIONS,
        )

    def events(self) -> list[Record]:
        self.journal.flush()
        return list(read_events(self.journal.path))

    def opencode(self, path: str) -> Any:
        with self.server.client(timeout=10) as http:
            return http.get(path, params={"directory": str(self.root)}).json()


def brief(root: Path, task: str, files: list[str]) -> SessionBrief:
    text = (
        "Project goal: a calculator\n\n"
        f"Your task {task}: Build calc\n\n"
        f"Files you own (only these may be written): {', '.join(files)}"
    )
    return SessionBrief(
        session=f"worker:{task}#1",
        actor=f"worker:{task}",
        role="worker",
        system="",
        brief=text,
        final=finish_tool(root, files),
        task_id=task,
    )


COUNTER = iter(range(1, 1000))


@pytest.fixture
def harness(
    tmp_path: Path, server: OpenCodeServer, model: tuple[Model, ScriptedModelServer]
) -> Iterator[Harness]:
    root = server.workspace / f"ws{next(COUNTER)}"
    root.mkdir()
    paths = create_mission_dir(tmp_path, "20261125-000000-abcd")
    guard = LeaseGuard(root, tmp_path / "shadow")
    task = f"T{next(COUNTER)}"
    with Journal.open(paths.events, mission=paths.id) as journal:
        yield Harness(root, server, model[0], journal, guard, ["calc.py"], task)


def write(root: Path, name: str, content: str) -> tuple[str, dict[str, str]]:
    return ("write", {"filePath": str(root / name), "content": content})


def writes_then_answers(root: Path, name: str, text: str) -> Script:
    """Step 0 writes ``name`` with OpenCode's ``write`` tool, step 1 answers ``Wrote name.``."""

    def play(step: int) -> Turn:
        return [Turn(tool_calls=[write(root, name, text)]), Turn(f"Wrote {name}.")][step]

    return play


def kinds(events: list[Record]) -> list[str]:
    return [ev.event_type(e) for e in events]


# --- a session that works --------------------------------------------------------------


def test_a_worker_session_writes_its_file_and_finishes_recorded(harness: Harness) -> None:
    root = harness.root
    harness.model.scripts[harness.task] = lambda step: [
        Turn(tool_calls=[write(root, "calc.py", "def add(a, b):\n    return a + b\n")]),
        Turn("Built calc.py with add()."),
    ][step]
    outcome = harness.session().run()
    assert outcome.result == {"summary": "Built calc.py with add()."}, outcome.failure
    assert (root / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    events = harness.events()
    assert kinds(events) == [
        "session.started",
        "session.linked",
        "model.requested",
        "model.responded",
        "tool.called",
        "tool.returned",
        "model.requested",
        "model.responded",
        "session.finished",
    ]
    link = next(e for e in events if isinstance(e, ev.SessionLinked))
    assert link.external_id.startswith("ses_") and link.backend == "opencode"
    called = next(e for e in events if isinstance(e, ev.ToolCalled))
    assert called.name == "write" and "calc.py" in called.arguments
    assert (
        harness.opencode(f"/session/{link.external_id}")["title"]
        == f"worker {harness.task}: Build calc"
    )
    assert fold_session(events).result == outcome.result


def test_the_prompt_carries_the_brief_and_the_lease(harness: Harness) -> None:
    root = harness.root
    harness.model.scripts[harness.task] = lambda step: [
        Turn(tool_calls=[write(root, "calc.py", "x = 1\n")]),
        Turn("done"),
    ][step]
    harness.session().run()
    started = next(e for e in harness.events() if isinstance(e, ev.SessionStarted))
    prompt = started.messages[-1].content
    assert f"Your task {harness.task}: Build calc" in prompt
    assert "only these files: calc.py" in prompt and "Do not create, change" in prompt
    sent = harness.opencode(f"/session/{_link(harness).external_id}/message")[0]
    assert sent["parts"][0]["text"] == prompt
    assert started.messages[0].content in harness.model.system[harness.task]  # added to OpenCode's


def _link(harness: Harness) -> ev.SessionLinked:
    return next(e for e in harness.events() if isinstance(e, ev.SessionLinked))


def test_a_worker_that_stops_before_writing_its_file_is_told_to(harness: Harness) -> None:
    root = harness.root
    harness.model.scripts[harness.task] = lambda step: [
        Turn("I think I am done."),
        Turn(tool_calls=[write(root, "calc.py", "x = 1\n")]),
        Turn("Now calc.py is written."),
    ][step]
    outcome = harness.session().run()
    assert outcome.result == {"summary": "Now calc.py is written."}, outcome.failure
    nudges = [e for e in harness.events() if isinstance(e, ev.SessionNudged)]
    assert len(nudges) == 1 and nudges[0].message is not None
    assert "calc.py" in nudges[0].message.content


def test_permission_requests_and_questions_are_refused_unattended(
    harness: Harness, tmp_path: Path
) -> None:
    root, outside = harness.root, tmp_path / "outside"
    outside.mkdir()
    question = {
        "question": "Which?",
        "header": "q",
        "options": [{"label": "a", "description": "a"}],
    }
    harness.model.scripts[harness.task] = lambda step: [
        Turn(tool_calls=[write(outside, "escape.py", "x\n")]),  # asks external_directory
        Turn(tool_calls=[("question", {"questions": [question]})]),  # dismissed: the loop stops
        Turn(tool_calls=[write(root, "calc.py", "x = 4\n")]),  # after the missing-file nudge
        Turn("Wrote calc.py without asking."),
    ][step]
    outcome = harness.session().run()
    assert outcome.result == {"summary": "Wrote calc.py without asking."}, outcome.failure
    assert not (outside / "escape.py").exists()
    returned = [e for e in harness.events() if isinstance(e, ev.ToolReturned)]
    assert [(e.name, e.is_error) for e in returned] == [
        ("write", True),
        ("question", True),
        ("write", False),
    ]
    assert "unattended" in returned[0].output


# --- the lease ----------------------------------------------------------------------------


def test_writes_outside_the_lease_are_put_back_and_fail_the_session(harness: Harness) -> None:
    root = harness.root
    (root / "other.py").write_text("keep me\n")
    harness.model.scripts[harness.task] = lambda step: [
        Turn(
            tool_calls=[
                write(root, "calc.py", "x = 1\n"),
                write(root, "other.py", "overwritten\n"),
                write(root, "stray.txt", "stray\n"),
            ]
        ),
        Turn("done, and I fixed other.py too"),
    ][step]
    outcome = harness.session().run()
    assert outcome.result is None
    assert outcome.failure is not None and "outside its lease" in outcome.failure
    assert "other.py (modified, restored)" in outcome.failure
    assert "stray.txt (created, removed)" in outcome.failure
    assert (root / "other.py").read_text() == "keep me\n"
    assert not (root / "stray.txt").exists()
    assert (root / "calc.py").read_text() == "x = 1\n"
    assert kinds(harness.events())[-1] == "session.failed"


# --- stop, then resume ------------------------------------------------------------------


def test_an_interrupted_session_is_aborted_and_a_resume_redispatches_it(harness: Harness) -> None:
    root = harness.root
    task = harness.task
    harness.model.scripts[task] = lambda step: [
        Turn(
            tool_calls=[("bash", {"command": "echo x > stray.txt; sleep 30", "description": "w"})]
        ),
        Turn(tool_calls=[write(root, "calc.py", "x = 2\n")]),
        Turn("Resumed and wrote calc.py."),
    ][step]
    running = harness.model.step(task, 0)

    def gate() -> None:
        if running.is_set() and (root / "stray.txt").exists():
            raise SessionInterrupted("stopped")

    started = time.monotonic()
    with pytest.raises(SessionInterrupted):
        harness.session(gate=gate).run()
    assert time.monotonic() - started < 20  # the 30 s command was cut short
    link = _link(harness)
    assert link.external_id not in harness.opencode("/session/status")
    messages = harness.opencode(f"/session/{link.external_id}/message")
    assert messages[-1]["info"]["error"]["name"] == "MessageAbortedError"
    assert not (root / "stray.txt").exists()  # put back after the abort
    harness.record(
        ev.SessionInterrupted(session=f"worker:{task}#1", reason="stopped"), f"worker:{task}"
    )

    outcome = harness.session(prior=tuple(harness.events())).run()
    assert outcome.result == {"summary": "Resumed and wrote calc.py."}, outcome.failure
    events = harness.events()
    assert sum(isinstance(e, ev.SessionLinked) for e in events) == 1  # the same OpenCode session
    users = [m for m in harness.opencode(f"/session/{link.external_id}/message")]
    assert sum(m["info"]["role"] == "user" for m in users) == 2  # brief, then "continue"
    turns = [e.turn for e in events if isinstance(e, ev.ModelResponded)]
    assert turns == [1, 2, 3]
    resumed = [e for e in events if isinstance(e, ev.SessionNudged)]
    assert [e.reason for e in resumed] == ["resumed"]
    conversation = [m.content for m in fold_session(events).messages if m.role == "user"]
    assert len(conversation) == 2 and "has now resumed this task" in conversation[1]


class Killed(Exception):
    """Stands for ocactors dying at one point of the log."""


def test_a_resume_reattaches_to_a_session_that_finished_meanwhile(harness: Harness) -> None:
    root = harness.root
    harness.model.scripts[harness.task] = lambda step: [
        Turn(tool_calls=[write(root, "calc.py", "x = 3\n")]),
        Turn("Wrote calc.py once."),
    ][step]

    def dies_at_the_last_answer(event: Event, actor: str) -> Event:
        if isinstance(event, ev.ModelResponded) and event.turn == 2:
            raise Killed("killed")
        return harness.record(event, actor)

    with pytest.raises(Killed):
        harness.session(record=dies_at_the_last_answer).run()
    assert "session.finished" not in kinds(harness.events())

    outcome = harness.session(prior=tuple(harness.events())).run()
    assert outcome.result == {"summary": "Wrote calc.py once."}, outcome.failure
    assert harness.model.asked[harness.task] == 2  # never prompted again
    events = harness.events()
    assert kinds(events)[-2:] == ["model.responded", "session.finished"]
    assert sum(isinstance(e, ev.ModelRequested) for e in events) == 2


def test_an_ended_session_resumes_to_its_recorded_outcome_without_opencode(
    harness: Harness,
) -> None:
    prior = (ev.SessionFinished(session=f"worker:{harness.task}#1", result={"summary": "s"}),)
    outcome = harness.session(prior=prior).run()
    assert outcome.result == {"summary": "s"}
    assert harness.events() == []


# --- OpenCode failing ---------------------------------------------------------------------


def test_a_model_opencode_cannot_find_fails_the_session_in_one_line(harness: Harness) -> None:
    workspace = Workspace(harness.root, writable=harness.files)
    session = OpenCodeSession(
        brief(harness.root, harness.task, harness.files),
        server=harness.server,
        toolbox=Toolbox([], ToolContext(workspace)),
        record=harness.record,
        options=OpenCodeOptions(provider_id="nope", model_id="none", poll_s=0.2, answer_grace_s=5),
    )
    outcome = session.run()
    assert outcome.failure is not None and "OpenCode stopped without answering" in outcome.failure
    assert "\n" not in outcome.failure


def test_the_factory_puts_workers_on_opencode_and_the_others_on_agent_session(
    harness: Harness,
) -> None:
    factory = opencode_session_factory(harness.server, harness.guard, OPTIONS)
    workspace = Workspace(harness.root, writable=harness.files)
    common: dict[str, Any] = {
        "client": None,
        "toolbox": Toolbox([], ToolContext(workspace)),
        "record": harness.record,
        "mission": "m",
    }
    worker = brief(harness.root, harness.task, harness.files)
    planner = SessionBrief("planner#1", "planner", "planner", "", "", worker.final)
    assert isinstance(factory(worker, **common), OpenCodeSession)
    assert isinstance(factory(planner, **{**common, "client": _Client()}), AgentSession)


class _Client:
    model = "scripted"
    context_window = 100_000


# --- the server ---------------------------------------------------------------------------


def test_no_opencode_on_path_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(OpenCodeNotFound, match="npm install -g opencode-ai"):
        OpenCodeServer(tmp_path, executable="no-such-opencode-here").start()


def test_attaching_with_a_wrong_password_is_refused(server: OpenCodeServer) -> None:
    wrong = OpenCodeServer(server.workspace, url=server.url, password="wrong", start_timeout_s=5)
    with pytest.raises(OpenCodeUnavailable, match="refused the password"):
        wrong.start()


def test_attaching_to_a_url_where_nothing_answers_gives_up(tmp_path: Path) -> None:
    from ocactors.actors.opencode_server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(OpenCodeUnavailable, match="no OpenCode server answers"):
        OpenCodeServer(tmp_path, url=url, start_timeout_s=1).start()


class _OldHealth(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"healthy":true,"version":"0.9.1"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_an_opencode_too_old_is_refused(tmp_path: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _OldHealth)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        with pytest.raises(OpenCodeTooOld, match=r"0\.9\.1 .* too old"):
            OpenCodeServer(tmp_path, url=url, start_timeout_s=5).start()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_a_serve_that_dies_mid_session_is_a_clear_error_or_a_clean_stop(
    tmp_path: Path, model: tuple[Model, ScriptedModelServer]
) -> None:
    script, scripted = model
    root = tmp_path / "dies"
    root.mkdir()
    write_config(root, scripted.base_url)
    script.scripts["T999"] = lambda step: Turn(
        tool_calls=[("bash", {"command": "sleep 30", "description": "wait"})]
    )
    died: list[str] = []
    noticed = threading.Event()

    def on_exit(message: str) -> None:
        died.append(message)
        noticed.set()

    paths = create_mission_dir(tmp_path, "20261125-000000-dead")
    options = OpenCodeOptions(provider_id="scripted", model_id="scripted", died_grace_s=0.5)
    with (
        OpenCodeServer(root, env=opencode_env(tmp_path / "home")) as own,
        Journal.open(paths.events, mission=paths.id) as journal,
    ):
        own.watch(on_exit)
        running = script.step("T999", 0)

        def session(gate: Callable[[], None]) -> OpenCodeSession:
            return OpenCodeSession(
                brief(root, "T999", ["calc.py"]),
                server=own,
                toolbox=Toolbox([], ToolContext(Workspace(root, writable=["calc.py"]))),
                record=lambda event, actor: journal.append(event, actor=actor).event,
                gate=gate,
                options=options,
            )

        def kill_when_running() -> None:
            if running.is_set() and own.alive():
                assert own._process is not None
                os.killpg(own._process.pid, signal.SIGKILL)

        with pytest.raises(OpenCodeServerDied, match=r"exited with code -9.*ocactors resume"):
            session(kill_when_running).run()  # nobody stops the mission: a clear error
        assert noticed.wait(5) and "exited with code -9" in died[0]

        def runner_stopped() -> None:
            if noticed.is_set():
                raise SessionInterrupted("stopped")

        with pytest.raises(SessionInterrupted):
            session(runner_stopped).run()  # the runner stopped it: a clean, resumable stop


# --- a whole mission ----------------------------------------------------------------------


def test_a_mission_seals_with_its_workers_run_as_opencode_sessions(
    tmp_path: Path, server: OpenCodeServer, model: tuple[Model, ScriptedModelServer]
) -> None:
    script, scripted = model
    root = server.workspace / "mission"
    root.mkdir()
    files = {"M1": ("calc.py", "def add(a, b):\n    return a + b\n"), "M2": ("notes.txt", "ok\n")}
    check = f"{sys.executable} -c 'import calc; assert calc.add(2, 3) == 5'"
    plan = [TaskPlay(task, {name: text}) for task, (name, text) in files.items()]
    script.ocactors = Playbook([plan], [Verdict(True)], check_command=check).script()
    for task, (name, text) in files.items():
        script.scripts[task] = writes_then_answers(root, name, text)
    guard = LeaseGuard(root, tmp_path / "shadow")
    factory = opencode_session_factory(server, guard, OPTIONS)
    mission = MissionHarness(
        root,
        scripted,
        settings=MissionSettings(verify_command=check),
        extra={"session_factory": factory},
    )
    state = mission.start("build calc")
    assert state.outcome == "sealed", state.detail
    assert (root / "calc.py").read_text() == files["M1"][1]
    assert mission.paths is not None
    events = list(read_events(mission.paths.events))
    links = [e for e in events if isinstance(e, ev.SessionLinked)]
    assert sorted(e.actor for e in links) == ["worker:M1", "worker:M2"]
    started = [e for e in events if isinstance(e, ev.SessionStarted) and e.role == "worker"]
    assert {e.model for e in started} == {"scripted/scripted"}
    finished = [e for e in events if isinstance(e, ev.TaskFinished)]
    assert sorted(e.summary for e in finished) == ["Wrote calc.py.", "Wrote notes.txt."]
