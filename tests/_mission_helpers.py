"""Running whole missions in tests: a scripted model on loopback, real files, real actors."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ocactors.actors.context import Meter, MissionContext
from ocactors.actors.mission import (
    BaselineRecorder,
    MissionRun,
    open_new_mission,
    record_resume,
)
from ocactors.actors.models import (
    LimiterRegistry,
    ModelClient,
    RoleConfig,
    ScriptedModelServer,
    build_client,
)
from ocactors.actors.models.playbook import Playbook, TaskPlay, Verdict
from ocactors.actors.session import SessionLimits
from ocactors.actors.state import MissionState
from ocactors.events import Journal, MissionPaths
from ocactors.events.catalogue import MissionSettings

PY = sys.executable

CORE_BUGGY = '''"""Word statistics."""


def word_count(text):
    return len(text.split())


def top_words(text, n):
    counts = {}
    for word in text.lower().split():
        counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: -counts[w])[:n]
'''

CORE_FIXED = CORE_BUGGY.replace(
    "sorted(counts, key=lambda w: -counts[w])", "sorted(counts, key=lambda w: (-counts[w], w))"
)

INIT = '"""textstats: small word statistics."""\n'

TESTS = """import unittest

from textstats.core import top_words, word_count


class CoreTest(unittest.TestCase):
    def test_word_count(self):
        self.assertEqual(word_count("a b  c"), 3)

    def test_ties_are_alphabetical(self):
        self.assertEqual(top_words("b a c a b", 2), ["a", "b"])
        self.assertEqual(top_words("z y x", 2), ["x", "y"])


if __name__ == "__main__":
    unittest.main()
"""

CHECK = f"{PY} -m unittest discover -s tests -q"


def textstats_playbook(check: str | None = CHECK) -> Playbook:
    """Plan of three tasks with dependencies, a rejecting review, one fix task, approval."""
    first = [
        TaskPlay("T1", {"textstats/__init__.py": INIT, "textstats/core.py": CORE_BUGGY}),
        TaskPlay("T2", {"tests/test_core.py": TESTS}, depends_on=("T1",)),
        TaskPlay("T3", {"README.txt": "textstats: word statistics\n"}, depends_on=("T1",)),
    ]
    fix = [TaskPlay("F1", {"textstats/core.py": CORE_FIXED})]
    verdicts = [
        Verdict(False, [("textstats/core.py", "top_words must break ties alphabetically")]),
        Verdict(True),
    ]
    return Playbook(plans=[first, fix], verdicts=verdicts, check_command=check)


@dataclass
class MissionHarness:
    """A mission in ``workspace`` against ``server``; ``run()`` returns the Commander's state."""

    workspace: Path
    server: ScriptedModelServer
    settings: MissionSettings = field(default_factory=lambda: MissionSettings(verify_command=CHECK))
    stream: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)
    paths: MissionPaths | None = None
    http: httpx.Client | None = None

    def clients(self, http: httpx.Client) -> dict[str, ModelClient]:
        registry = LimiterRegistry()
        return {
            role: build_client(
                RoleConfig(
                    role=role,
                    provider="openai",
                    model="scripted",
                    base_url=self.server.base_url,
                    stream=self.stream,
                    timeout_s=10.0,
                    max_concurrency=64,
                ),
                http,
                registry,
            )
            for role in ("planner", "worker", "reviewer")
        }

    def context(self, journal: Journal, paths: MissionPaths, http: httpx.Client) -> MissionContext:
        return MissionContext(
            mission=paths.id,
            workspace=self.workspace,
            journal=journal,
            clients=self.clients(http),
            settings=self.settings,
            http=http,
            meter=Meter(),
            limits=SessionLimits(),
            on_before_write=BaselineRecorder(self.workspace, paths.baseline),
            tick_s=0.05,
            **dict(self.extra),
        )

    def start(self, goal: str = "build textstats") -> MissionState:
        paths, journal = open_new_mission(
            self.workspace, goal, self.settings, lambda p, mission: Journal.open(p, mission=mission)
        )
        self.paths = paths
        return self._run(journal, paths)

    def resume(self, settings: MissionSettings | None = None) -> MissionState:
        """Carry the mission on in this process, as `ocactors resume` does."""
        assert self.paths is not None
        journal = Journal.open(self.paths.events, mission=self.paths.id)
        record_resume(journal, "test", settings)
        return self._run(journal, self.paths)

    def _run(self, journal: Journal, paths: MissionPaths) -> MissionState:
        with httpx.Client(timeout=10.0) as http:
            try:
                return MissionRun.prepare(self.context(journal, paths, http), paths).run()
            finally:
                journal.close()
