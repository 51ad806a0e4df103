"""Snapshots are a cache, never the truth: snapshot + tail equals the full fold, always."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from ocactors.actors.state import fold_mission
from ocactors.events import MissionPaths, read_events
from ocactors.missions import fold_all
from ocactors.snapshots import SNAPSHOT_NAME, fold_with_snapshot, load_snapshot, save_snapshot

FAILED = Path(__file__).parent / "data" / "failed-mission"


@pytest.fixture
def mission(tmp_path: Path) -> MissionPaths:
    """A copy of the real failed mission shipped for the debugging guide."""
    (source,) = (FAILED / ".opencode" / "missions").iterdir()
    root = tmp_path / source.name
    shutil.copytree(source, root)
    (root / SNAPSHOT_NAME).unlink(missing_ok=True)
    return MissionPaths(root)


def cut(paths: MissionPaths, lines: int) -> None:
    """Snapshot the fold of the first ``lines`` lines, as a reader would have at that time."""
    data = paths.events.read_bytes().splitlines(keepends=True)
    prefix = data[:lines]
    state = fold_mission(read_events(paths.events, until=len(prefix)))
    save_snapshot(paths, state, sum(map(len, prefix)), prefix[-1].rstrip(b"\n"))


def test_snapshot_plus_tail_equals_the_full_fold_at_random_cut_points(
    mission: MissionPaths,
) -> None:
    full = fold_mission(read_events(mission.events))
    total = len(mission.events.read_bytes().splitlines())
    for lines in random.Random(7).sample(range(1, total + 1), 12):
        cut(mission, lines)
        assert load_snapshot(mission) is not None
        assert fold_with_snapshot(mission, lambda *_: None) == full, lines


def test_a_finished_mission_is_snapshotted_and_the_next_look_folds_nothing(
    mission: MissionPaths,
) -> None:
    first, _ = fold_all(mission)
    snapshot = load_snapshot(mission)
    assert snapshot is not None and snapshot.seq == first.last_seq
    assert snapshot.offset == mission.events.stat().st_size
    assert fold_all(mission)[0] == first


def test_a_snapshot_that_disagrees_with_the_log_is_ignored(mission: MissionPaths) -> None:
    full = fold_mission(read_events(mission.events))
    cut(mission, 30)
    lines = mission.events.read_bytes().splitlines(keepends=True)
    lines[29] = lines[29].replace(b'"seq":30', b'"seq":30 ')  # the prefix changed
    replaced = mission.events.with_name("new.jsonl")
    replaced.write_bytes(b"".join(lines))
    replaced.replace(mission.events)  # a new file (inode) too
    assert load_snapshot(mission) is None
    assert fold_all(mission)[0] == full  # rebuilt from the log


def test_deleting_a_snapshot_changes_nothing(mission: MissionPaths) -> None:
    with_cache, _ = fold_all(mission)
    (mission.root / SNAPSHOT_NAME).unlink()
    assert fold_all(mission)[0] == with_cache


def test_a_mission_leaves_a_snapshot_of_its_whole_fold(tmp_path: Path) -> None:
    """The runner folds as it appends and pins that fold to the log when the mission ends."""
    import os
    import subprocess
    import sys

    from ocactors.actors.models import ScriptedModelServer
    from ocactors.actors.models.playbook import Playbook, TaskPlay, Verdict
    from ocactors.events import list_missions

    playbook = Playbook(plans=[[TaskPlay("T1", {"a.txt": "a\n"})]], verdicts=[Verdict(True)])
    with ScriptedModelServer(playbook.script()) as server:
        env = {**os.environ, "OCACTORS_MODEL": "scripted", "OCACTORS_BASE_URL": server.base_url}
        done = subprocess.run(
            [sys.executable, "-m", "ocactors.cli", "task", "g", "--verify", "true",
             "-C", str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (paths,) = list_missions(tmp_path)
    snapshot = load_snapshot(paths)
    assert snapshot is not None
    assert snapshot.state == fold_mission(read_events(paths.events))
