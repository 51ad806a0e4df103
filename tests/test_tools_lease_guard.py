"""The lease guard on real files: what changes outside the lease between before() and after()
is put back, what the lease holds is kept, and the report says which is which."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ocactors.tools.lease_guard import LeaseGuard, scan


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "calc").mkdir(parents=True)
    (ws / ".git").mkdir()
    (ws / ".opencode").mkdir()
    (ws / "calc" / "add.py").write_text("def add(a, b):\n    return a + b\n")
    (ws / "calc" / "sub.py").write_text("def sub(a, b):\n    return a - b\n")
    (ws / "README.md").write_text("# calc\n")
    (ws / "run.sh").write_text("echo hi\n")
    (ws / "run.sh").chmod(0o755)
    return ws


@pytest.fixture
def guard(root: Path) -> LeaseGuard:
    return LeaseGuard(root, root / ".opencode" / "shadow")


def contents(root: Path) -> dict[str, tuple[str, int]]:
    """Every file outside .git/.opencode: its text and mode."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith((".git", ".opencode")):
            out[rel] = (path.read_text(), path.stat().st_mode & 0o7777)
    return out


def test_changes_outside_the_lease_are_put_back_and_the_lease_kept(
    root: Path, guard: LeaseGuard
) -> None:
    expected = contents(root)
    snap = guard.before(["calc/add.py"])
    (root / "calc" / "add.py").write_text("def add(a, b):\n    return b + a\n")  # lease: kept
    (root / "calc" / "sub.py").write_text("hacked\n")  # modified
    (root / "README.md").unlink()  # deleted
    (root / "out.txt").write_text("x\n")  # created
    (root / "new" / "deep").mkdir(parents=True)
    (root / "new" / "deep" / "x.py").write_text("x\n")  # created, in a new folder
    (root / "run.sh").chmod(0o644)  # mode only
    report = guard.after(snap)
    expected["calc/add.py"] = ("def add(a, b):\n    return b + a\n", 0o644)
    assert contents(root) == expected
    assert not (root / "new").exists()
    assert [(c.path, c.kind, c.outcome) for c in report.changes] == [
        ("README.md", "deleted", "restored"),
        ("calc/sub.py", "modified", "restored"),
        ("new", "created", "removed"),
        ("out.txt", "created", "removed"),
        ("run.sh", "modified", "restored"),
    ]
    assert report.violated and "calc/sub.py (modified, restored)" in report.message
    assert "Files you may change: calc/add.py" in report.message


def test_nothing_outside_the_lease_changed_gives_an_empty_report(
    root: Path, guard: LeaseGuard
) -> None:
    snap = guard.before(["calc/add.py"])
    (root / "calc" / "add.py").write_text("changed\n")
    (root / "calc" / "__pycache__").mkdir()
    (root / "calc" / "__pycache__" / "add.pyc").write_bytes(b"\0")  # caches are not guarded
    report = guard.after(snap)
    assert not report.violated and report.message == "" and report.paths == ()
    assert (root / "calc" / "__pycache__" / "add.pyc").exists()


def test_a_rewrite_that_puts_the_old_mtime_back_is_still_seen(
    root: Path, guard: LeaseGuard
) -> None:
    readme = root / "README.md"
    info = readme.stat()
    snap = guard.before([])
    readme.write_text("# CALC\n")  # same size
    os.utime(readme, ns=(info.st_atime_ns, info.st_mtime_ns))
    report = guard.after(snap)
    assert report.paths == ("README.md",) and readme.read_text() == "# calc\n"


def test_the_restored_file_keeps_its_mtime_and_is_a_new_inode(
    root: Path, guard: LeaseGuard, tmp_path: Path
) -> None:
    """A hard link made by the command to a workspace file is cut, not written through."""
    sub = root / "calc" / "sub.py"
    mtime = sub.stat().st_mtime_ns
    snap = guard.before([])
    os.link(sub, tmp_path / "outside-link")
    sub.write_text("changed through a link\n")
    guard.after(snap)
    assert sub.read_text() == "def sub(a, b):\n    return a - b\n"
    assert sub.stat().st_mtime_ns == mtime


def test_a_removed_folder_comes_back_without_the_lease_file(root: Path, guard: LeaseGuard) -> None:
    snap = guard.before(["calc/add.py"])
    for path in (root / "calc").iterdir():
        path.unlink()
    (root / "calc").rmdir()
    report = guard.after(snap)
    assert sorted(p.name for p in (root / "calc").iterdir()) == ["sub.py"]
    assert [c.path for c in report.changes] == ["calc", "calc/sub.py"]


def test_a_new_folder_holding_a_lease_file_keeps_it(root: Path, guard: LeaseGuard) -> None:
    snap = guard.before(["pkg/mod.py"])
    (root / "pkg").mkdir()
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "pkg" / "other.py").write_text("y = 1\n")
    report = guard.after(snap)
    assert sorted(p.name for p in (root / "pkg").iterdir()) == ["mod.py"]
    assert report.paths == ("pkg/other.py",)


def test_symlinks_are_removed_and_put_back(root: Path, guard: LeaseGuard) -> None:
    (root / "link").symlink_to("README.md")
    snap = guard.before([])
    (root / "link").unlink()
    (root / "link").symlink_to("/etc/passwd")
    (root / "escape").symlink_to("/etc")
    report = guard.after(snap)
    assert os.readlink(root / "link") == "README.md"
    assert not os.path.lexists(root / "escape")
    assert report.paths == ("escape", "link")


def test_a_new_git_or_opencode_folder_outside_the_lease_is_removed(
    root: Path, guard: LeaseGuard
) -> None:
    snap = guard.before([])
    (root / "calc" / ".git" / "hooks").mkdir(parents=True)
    (root / "calc" / ".git" / "hooks" / "pre-commit").write_text("evil\n")
    (root / "node_modules").mkdir()
    report = guard.after(snap)
    assert not (root / "calc" / ".git").exists()
    assert (root / "node_modules").exists()  # caches are left
    assert report.paths == ("calc/.git",)


def test_what_others_hold_is_theirs_and_is_protected(root: Path, guard: LeaseGuard) -> None:
    guard.hold("worker:T2", ["calc/sub.py"])
    snap = guard.before(["calc/add.py"], owner="worker:T1")
    assert snap.protect == ("calc/sub.py",)
    (root / "calc" / "sub.py").write_text("T2's legitimate change\n")
    guard.hold("worker:T3", ["README.md"])  # granted while the command runs
    (root / "README.md").write_text("T3's change\n")
    guard.release("worker:T2")
    report = guard.after(snap)
    assert not report.violated
    assert (root / "calc" / "sub.py").read_text() == "T2's legitimate change\n"
    assert (root / "README.md").read_text() == "T3's change\n"


def test_an_owner_is_not_excluded_by_its_own_hold(root: Path, guard: LeaseGuard) -> None:
    guard.hold("reviewer", [])
    guard.hold("worker:T1", ["calc/add.py"])
    snap = guard.before(["calc/add.py"], owner="worker:T1")
    (root / "README.md").write_text("no\n")
    assert guard.after(snap).paths == ("README.md",)


def test_overlapping_commands_restore_the_state_before_the_first(
    root: Path, guard: LeaseGuard
) -> None:
    first = guard.before([], owner="a")
    (root / "README.md").write_text("first's damage\n")
    second = guard.before([], owner="b")  # copies the damaged README as its "before"
    assert guard.after(second).paths == ()
    assert guard.after(first).paths == ("README.md",)
    assert (root / "README.md").read_text() == "# calc\n"


def test_files_too_large_to_copy_are_protected_and_reported(root: Path) -> None:
    (root / "data.bin").write_bytes(b"x" * 2000)
    guard = LeaseGuard(root, root / ".opencode" / "shadow", max_file_bytes=1000)
    snap = guard.before([])
    assert snap.protect == ("data.bin",)
    (root / "data.bin").write_bytes(b"y")
    report = guard.after(snap)
    assert report.changes[0].outcome.startswith("could not be put back")


def test_the_shadow_copies_only_what_changed_and_drops_old_copies(
    root: Path, guard: LeaseGuard
) -> None:
    store = root / ".opencode" / "shadow"
    guard.after(guard.before([]))
    first = sorted(os.listdir(store))
    assert len(first) == 4  # add.py, sub.py, README.md, run.sh
    for _ in range(3):
        guard.after(guard.before([]))
    assert sorted(os.listdir(store)) == first  # nothing copied again
    (root / "README.md").write_text("edited by a tool between commands\n")
    snap = guard.before([])
    assert len(os.listdir(store)) == 4  # one new copy, the old one deleted
    (root / "README.md").write_text("damaged by the command\n")
    assert guard.after(snap).paths == ("README.md",)
    assert (root / "README.md").read_text() == "edited by a tool between commands\n"


def test_virtualenvs_are_skipped_whatever_their_name(root: Path, guard: LeaseGuard) -> None:
    (root / "env" / "lib").mkdir(parents=True)
    (root / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "env" / "lib" / "x.py").write_text("x\n")
    assert "env/lib/x.py" not in scan(root, guard.skip)
    snap = guard.before([])
    (root / "env" / "lib" / "y.py").write_text("y\n")
    assert not guard.after(snap).violated


def test_bad_use_is_refused(root: Path, guard: LeaseGuard) -> None:
    with pytest.raises(ValueError, match="skipped folder"):
        LeaseGuard(root, root / "shadow")
    snap = guard.before([])
    guard.after(snap)
    with pytest.raises(ValueError, match="already checked"):
        guard.after(snap)


def test_the_guard_is_safe_to_share_between_threads(root: Path, guard: LeaseGuard) -> None:
    for n in range(4):
        (root / f"f{n}.txt").write_text(f"{n}\n")
    errors: list[BaseException] = []
    start = threading.Barrier(4, timeout=10)

    def command(n: int) -> None:
        try:
            start.wait()
            for _ in range(5):
                snap = guard.before([f"f{n}.txt"], owner=str(n))
                (root / f"f{n}.txt").write_text(f"{n} again\n")
                assert not guard.after(snap).violated
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=command, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors


def test_write_file_temp_files_of_held_paths_are_left_to_their_writer(
    root: Path, guard: LeaseGuard
) -> None:
    """Another worker's write_file may be between its temp file and its rename right now."""
    guard.hold("worker:B", ["calc/sub.py"])
    snap = guard.before(["calc/add.py"], owner="worker:A")
    (root / "calc" / ".sub.py.0123abcd.tmp").write_text("B's write in flight\n")
    (root / "calc" / ".README.md.0123abcd.tmp").write_text("not anyone's\n")
    report = guard.after(snap)
    assert (root / "calc" / ".sub.py.0123abcd.tmp").exists()
    assert report.paths == ("calc/.README.md.0123abcd.tmp",)
