"""A repeated failure is recognised through the noise of real output, and a different failure
is not mistaken for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ocactors.actors.repeats import fingerprint, mask_volatile, same_failure

NOISY_TESTS = """
import datetime, os, random, tempfile, time


class Thing:
    pass


def test_file(tmp_path):
    target = tmp_path / "out.txt"
    assert target.exists(), f"missing {target}"


def test_object():
    assert Thing() is None


def test_value():
    seed = random.randrange(10**9)
    started = time.perf_counter()
    stamp = datetime.datetime.now().isoformat()
    where = tempfile.mkdtemp()
    took = time.perf_counter() - started
    assert 1 + 1 == 3, f"at {stamp} pid {os.getpid()} seed={seed} took {took:.6f}s in {where}"
"""


def pytest_run(project: Path) -> str:
    """The check as ocactors runs it: ``python -m pytest -q``, output as it comes."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "test_noisy.py").write_text(NOISY_TESTS)
    return root


def test_two_runs_of_the_same_failing_pytest_mask_to_the_same_text(project: Path) -> None:
    first, second = pytest_run(project), pytest_run(project)
    assert first != second  # the raw outputs differ: run time, tmp folder, address, pid...
    assert mask_volatile(first) == mask_volatile(second)
    assert same_failure(first, second) and fingerprint(first) == fingerprint(second)
    masked = mask_volatile(first)
    assert "3 failed in <duration>" in masked and "0x<addr>" in masked and "<tmp>" in masked


def test_a_different_failure_stays_different(project: Path) -> None:
    first = pytest_run(project)
    source = project / "test_noisy.py"
    source.write_text(NOISY_TESTS.replace("1 + 1 == 3", "1 + 1 == 4"))
    assert not same_failure(first, pytest_run(project))


@pytest.mark.parametrize(
    ("one", "two"),
    [
        ("===== 1 failed in 0.12s =====", "==== 1 failed in 10.53s ===="),
        ("Ran 3 tests in 0.001s\n\nFAILED", "Ran 3 tests in 0.153s\n\nFAILED"),
        ("ok  \texample.com/x\t0.003s", "ok  \texample.com/x\t1.210s"),
        ("test result: FAILED. finished in 0.00s", "test result: FAILED. finished in 2.31s"),
        ("Time:        1.234 s", "Time: 0.5 s"),
        ("  ✓ adds (12ms)", "  ✓ adds (3ms)"),
        ("2024-05-01T12:34:56.789Z ERROR x", "2025-01-02T01:02:03Z ERROR x"),
        ("[12:34:56] boom", "[01:02:03] boom"),
        ("<Foo object at 0x7f3a2b1c0d10>", "<Foo object at 0x7f9900aa11b0>"),
        ("/tmp/pytest-of-root/pytest-12/test_a0/x", "/tmp/pytest-of-ci/pytest-7/test_a0/x"),
        ("open /tmp/tmpk2j3h4_x/data.json", "open /tmp/tmpa8b7c6d5/data.json"),
        ("Using --randomly-seed=3571823", "Using --randomly-seed=42"),
        ("random seed: 1234", "random seed: 99"),
        ("killed pid 4312", "killed pid 77"),
        ("listening on 127.0.0.1:54321", "listening on 127.0.0.1:40001"),
        ("id 123e4567-e89b-12d3-a456-426614174000", "id 00000000-0000-4000-8000-000000000000"),
        ("\x1b[31mFAILED\x1b[0m x", "FAILED x"),
        ("FAILED t.py::test_a - assert <t.A object at 0x7f...", "FAILED t.py::test_a - ass..."),
    ],
)
def test_what_changes_from_run_to_run_is_masked(one: str, two: str) -> None:
    assert one != two and mask_volatile(one) == mask_volatile(two)


@pytest.mark.parametrize(
    ("one", "two"),
    [
        ("assert 2 == 3", "assert 2 == 4"),
        ("test_a.py:12: AssertionError", "test_a.py:13: AssertionError"),
        ("FAILED test_a.py::test_x", "FAILED test_a.py::test_y"),
        ("expected 5s timeout", "expected 5m timeout"),
        ("1 failed, 2 passed", "2 failed, 1 passed"),
        ("/home/me/proj/a.py", "/home/me/proj/b.py"),
        ("value 0x10", "value 0x11"),  # a short hex literal is data, not an address
    ],
)
def test_what_the_failure_says_is_kept(one: str, two: str) -> None:
    assert not same_failure(one, two)
