"""`replay --rerun` of a mission recorded from a provider that speaks like a real one.

Real providers give tool calls random ids (``call_8fK2...``) and compact argument JSON with
raw non-ASCII text; the rerun must serve both exactly as recorded to reproduce the events.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ocactors.actors.models import ScriptedModelServer, ScriptedRequest, Turn
from ocactors.actors.models.scripted_script import Script
from ocactors.events import list_missions, read_events
from ocactors.events.catalogue import ToolCalled
from tests._mission_helpers import MissionHarness, textstats_playbook


def like_a_provider(script: Script) -> Script:
    """Every turn of ``script`` with random call ids and compact, non-ASCII-raw arguments."""

    def wrap(entry: Callable[[ScriptedRequest], Turn]) -> Callable[[ScriptedRequest], Turn]:
        def play(request: ScriptedRequest) -> Turn:
            turn = entry(request)
            calls = [
                (name, args if isinstance(args, str) else compact(dict(args)))
                for name, args in turn.tool_calls
            ]
            ids = [f"call_{secrets.token_urlsafe(18)}" for _ in calls]
            return replace(turn, tool_calls=calls, call_ids=ids)

        return play

    return {pattern: wrap(entry) for pattern, entry in script.items()}  # type: ignore[arg-type]


def compact(arguments: dict[str, object]) -> str:
    text = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
    return text.replace('"summary":"wrote', '"summary":"écrit')  # raw non-ASCII, as sent


def test_a_mission_with_random_tool_call_ids_reruns_to_the_same_events(tmp_path: Path) -> None:
    workspace = tmp_path / "recorded"
    workspace.mkdir()
    with ScriptedModelServer(like_a_provider(textstats_playbook().script())) as server:
        state = MissionHarness(workspace, server).start("build textstats")
    assert state.phase == "sealed"
    calls = [
        e for e in read_events(list_missions(workspace)[0].events) if isinstance(e, ToolCalled)
    ]
    assert all(re.fullmatch(r"call_[\w-]{24}", c.call_id) for c in calls)
    assert any("écrit" in c.arguments for c in calls)
    rerun = ["replay", "-C", str(workspace), "--rerun", "--dir", str(tmp_path / "again")]
    done = subprocess.run(
        [sys.executable, "-m", "ocactors.cli", *rerun],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "same events and same files" in done.stdout
