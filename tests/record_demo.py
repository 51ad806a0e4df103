"""Regenerate the mission that `ocactors demo` replays (run by hand, not a test).

    python tests/record_demo.py

It runs the textstats mission against the scripted model (a plan of three tasks with
dependencies, a rejecting review, a fix task, approval), starting from cli/demo/project/, and
writes its log to cli/demo/mission.jsonl.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ocactors.actors.models import ScriptedModelServer  # noqa: E402
from ocactors.events.catalogue import MissionSettings  # noqa: E402
from tests._mission_helpers import MissionHarness, textstats_playbook  # noqa: E402

GOAL = "Build textstats: word_count and top_words (ties alphabetical), with unittest tests"
CHECK = "python -m unittest discover -s tests -q"


def main() -> int:
    workspace = Path(tempfile.mkdtemp(prefix="ocactors-record-")) / "textstats"
    shutil.copytree(ROOT / "cli" / "demo" / "project", workspace)
    settings = MissionSettings(verify_command=CHECK, parallel=4, max_iterations=5)
    with ScriptedModelServer(textstats_playbook(CHECK).script()) as server:
        harness = MissionHarness(workspace, server, settings)
        state = harness.start(GOAL)
    assert harness.paths is not None
    if state.phase != "sealed":
        print(f"the recording did not seal: {state.outcome} {state.detail}", file=sys.stderr)
        return 1
    shutil.copyfile(harness.paths.events, ROOT / "cli" / "demo" / "mission.jsonl")
    print(f"recorded {harness.paths.events} -> cli/demo/mission.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
