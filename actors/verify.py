"""The project's own checks: which ones a workspace has, and running them.

The checks are found at verify time (:mod:`ocactors.actors.project`: every ecosystem's, as
its developers run them, in the project's own environment), not at mission start, because a
mission that starts in an empty folder creates its tests as it goes.  They run through the
same process runner as the models' commands (:func:`ocactors.tools.shell.execute`): in the
sandbox, bounded, registered with the mission's process groups and ended with the mission.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ocactors.actors.decide import checks_line
from ocactors.actors.project import describe_checks, detect_checks, project_environment
from ocactors.events.catalogue import CheckSpec
from ocactors.tools import ShellConfig
from ocactors.tools.shell import execute

OUTPUT_TAIL = 4000
DEFAULT_TIMEOUT_S = 900.0


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What the checks said: exit code, a tail of the output, and how long they took."""

    command: str
    exit_code: int
    output: str
    duration_s: float

    @property
    def passed(self) -> bool:
        """Exit code zero."""
        return self.exit_code == 0


def project_checks(workspace: Path) -> tuple[CheckSpec, ...]:
    """The checks a developer of the project's ecosystems would run, looked up now.

    Looked up at verify time, not at mission start: a mission that starts in an empty folder
    creates its tests (and maybe its virtualenv) as it goes.
    """
    env = project_environment(workspace, os.environ)
    return tuple(CheckSpec(name=c.name, command=c.command) for c in detect_checks(workspace, env))


def describe_project(workspace: Path, settings_command: str | None) -> str:
    """For the reviewer: the checks (or the user's command) and how the project runs."""
    env = project_environment(workspace, os.environ)
    if settings_command == "none":
        checks = "none: the user chose to seal on your verdict alone (--verify none)"
    elif settings_command:
        checks = f"`{settings_command}`"
    else:
        checks = describe_checks(detect_checks(workspace, env))
    return f"{checks}\n(environment: {env.description})"


def run_checks(
    workspace: Path,
    checks: Sequence[CheckSpec],
    shell: ShellConfig,
    stopping: threading.Event | None = None,
) -> VerifyResult:
    """Every check, in order, each headed by its name; the first failing code is the result.

    A mission that is stopping starts no further check.
    """
    results: list[VerifyResult] = []
    for check in checks:
        if stopping is not None and stopping.is_set():
            break
        results.append(run_verify(workspace, check.command, shell))
    checks = checks[: len(results)]
    if len(results) == 1:
        return results[0]
    share = max(OUTPUT_TAIL // max(len(results), 1), 500)
    output = "\n".join(
        f"== {check.name}: {check.command} (exit {result.exit_code}) ==\n{result.output[-share:]}"
        for check, result in zip(checks, results, strict=True)
    )
    code = next((r.exit_code for r in results if r.exit_code != 0), 0)
    command = checks_line(list(checks))
    duration = round(sum(r.duration_s for r in results), 3)
    return VerifyResult(command, code, output[-2 * OUTPUT_TAIL :], duration)


def run_verify(
    workspace: Path, command: str, shell: ShellConfig, timeout_s: float = DEFAULT_TIMEOUT_S
) -> VerifyResult:
    """Run ``command`` in ``workspace`` through the mission's one process runner.

    Output is stdout and stderr interleaved, as a person sees it; a timeout is exit code 124
    (as ``timeout(1)`` says it), with a note at the end of the output.
    """
    done = execute(command, workspace, timeout_s, shell, owner="verifier", merge_stderr=True)
    result = done.result
    output, code = result.stdout, result.exit_code
    if done.report is not None and done.report.violated:
        output = f"{output}\n{done.report.message}"
    if result.timed_out:
        output, code = f"{output}\n[timed out after {timeout_s:.0f} s]", 124
    return VerifyResult(command, code, output[-OUTPUT_TAIL:], result.duration_s)
