"""``ls`` and ``status``: the missions of a workspace, and one mission in detail.

What reads the log, prices and draws is imported in the functions that use it (see
:mod:`ocactors.cli`): ``status`` never loads rich, ``ls --json`` neither.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ocactors.common import EXIT_OK, add_workspace, workspace_of

if TYPE_CHECKING:
    from ocactors.actors.state import MissionState


def register(sub: Any) -> None:
    """Add ls and status to the command line."""
    p = sub.add_parser(
        "ls",
        help="list the missions of this workspace, newest first",
        description="Missions in the workspace, newest first, with their state "
        "(running, sealed, failed, stopped, crashed), iterations, tasks, tokens, cost, wall time.",
        epilog="example: ocactors ls -C path/to/repo",
    )
    add_workspace(p)
    p.add_argument("--json", action="store_true", help="one JSON object per mission")
    p.set_defaults(func=run_ls)
    p = sub.add_parser(
        "status",
        help="one mission in detail: plan, sessions, leases, findings, checks, tokens, cost",
        description="The plan with each task's state and session, running sessions, leases, "
        "the last review findings, the verify result, retries, recoveries, tokens and dollars "
        "per role.",
        epilog="example: ocactors status 20261125   # an id or a unique prefix",
    )
    p.add_argument("mission", nargs="?", help="mission id or unique prefix (default: newest)")
    add_workspace(p)
    p.add_argument("--json", action="store_true", help="the folded state as JSON")
    p.set_defaults(func=run_status)


def _row(state: MissionState, word: str, mission_id: str) -> dict[str, Any]:
    from ocactors.actors.prices import mission_cost
    from ocactors.missions import wall_time

    done = len(state.tasks_in("done"))
    return {
        "id": mission_id,
        "goal": state.goal,
        "state": word,
        "iterations": state.iteration,
        "tasks_done": done,
        "tasks_total": len(state.tasks),
        "tokens": state.total_tokens,
        "cost_usd": mission_cost(state),
        "wall_time": wall_time(state),
    }


def run_ls(args: argparse.Namespace) -> int:
    """Print one row per mission."""
    import json

    from ocactors.events import list_missions
    from ocactors.missions import fold_all, status_word

    workspace = workspace_of(args)
    rows = []
    for paths in list_missions(workspace):
        state, notes = fold_all(paths)
        notes.say(paths, state)
        rows.append(_row(state, status_word(paths, state), paths.id))
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return EXIT_OK
    if not rows:
        print(f'no missions in {workspace}; start one with `ocactors task "GOAL"`')
        return EXIT_OK
    _print_table(rows)
    return EXIT_OK


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from ocactors.actors.prices import usd
    from ocactors.missions import shorten
    from ocactors.view import QuietConsole

    table = Table(box=None)
    for column in ("mission", "state", "iter", "tasks", "tokens", "cost", "time", "goal"):
        table.add_column(column, no_wrap=column != "goal")
    for row in rows:
        table.add_row(
            row["id"],
            row["state"],
            str(row["iterations"]),
            f"{row['tasks_done']}/{row['tasks_total']}",
            f"{row['tokens']:,}",
            usd(row["cost_usd"]),
            row["wall_time"],
            shorten(row["goal"], 60),
        )
    QuietConsole(width=None if sys.stdout.isatty() else 200).print(table)


def run_status(args: argparse.Namespace) -> int:
    """Print the mission's folded state for people (or as JSON)."""
    import json

    from ocactors import summary
    from ocactors.missions import fold_all, pick, status_word

    workspace = workspace_of(args)
    paths = pick(workspace, args.mission)
    state, notes = fold_all(paths)
    notes.say(paths, state)
    word = status_word(paths, state)
    if args.json:
        data = status_json(state, word)
        data["summary"] = summary.status_json(state, word, paths, workspace)
        print(json.dumps(data))
        return EXIT_OK
    print("\n".join(status_lines(state, word, paths.id)))
    print("\n".join(summary.status_text(state, word, paths, workspace)))
    return EXIT_OK


def status_json(state: MissionState, word: str) -> dict[str, Any]:
    """The folded state as JSON, with ``status`` and dollars: ``cost_usd`` for the mission
    and each role in ``tokens``, null where a turn had no known price."""
    import msgspec

    from ocactors.actors.prices import mission_cost, role_costs

    data: dict[str, Any] = msgspec.to_builtins(state)
    data["status"] = word
    data["cost_usd"] = mission_cost(state)
    for role, cost in role_costs(state).items():
        data["tokens"][role]["cost_usd"] = cost
    return data


def status_lines(state: MissionState, word: str, mission_id: str) -> list[str]:
    """The status report as lines."""
    from ocactors.actors.prices import cached_share
    from ocactors.missions import shorten, wall_time

    lines = [
        f"mission {mission_id}: {word.upper()}"
        + (f" ({state.outcome}: {state.detail})" if state.outcome and word != "sealed" else ""),
        f"goal: {state.goal}",
        f"iteration {state.iteration}/{state.settings.max_iterations}, phase {state.phase}, "
        f"wall time {wall_time(state)}",
        "",
        "plan:",
    ]
    for task in state.tasks.values():
        owner = f" [{task.session}]" if task.session else ""
        lines.append(
            f"  {task.spec.id:<8} {task.status:<11} try {task.attempts}{owner} "
            f"{', '.join(task.spec.files)}: {shorten(task.summary or task.spec.title, 70)}"
        )
        lines.extend(f"           failed: {shorten(f, 90)}" for f in task.failures)
    lines.append(f"running sessions: {len(state.sessions)}")
    lines.extend(f"  {s.session} ({s.role}, {s.model}) {s.step}" for s in state.sessions.values())
    leases = ", ".join(f"{f} -> {t}" for f, t in state.leases.items()) or "none"
    lines.append(f"leases: {leases}")
    lines.append(f"last review: {_verdict(state)}")
    lines.extend(f"  - {f.file}: {shorten(f.problem, 100)}" for f in state.findings)
    lines.append(f"checks: {_checks(state)}")
    lines.append(
        f"retries {state.retries}, recoveries {state.recoveries}, compactions {state.compactions}"
    )
    tokens = ", ".join(f"{role} {t.total:,}" for role, t in state.tokens.items()) or "none"
    share = cached_share(state.tokens.values())
    cached = f", {share:.0%} of the prompt cached" if share else ""
    lines.append(f"tokens: {tokens} (total {state.total_tokens:,}{cached})")
    if any(t.unpriced < t.turns for t in state.tokens.values()):
        lines.append(f"cost: {_costs(state)}")
    return lines


def _costs(state: MissionState) -> str:
    """``$0.0420 (planner $0.0100, worker $0.0300, reviewer $0.0020)``."""
    from ocactors.actors.prices import cost_text, role_costs, usd

    roles = ", ".join(f"{role} {usd(cost)}" for role, cost in role_costs(state).items())
    return f"{cost_text(state)} ({roles})" if roles else cost_text(state)


def _checks(state: MissionState) -> str:
    verify = state.verify
    if verify is None:
        return "not run yet"
    if verify.command == "none":
        return "unverified: no checks run (--verify none)"
    if not verify.command:
        return "none found: the project has no automated checks (not a pass)"
    verdict = "passed" if verify.passed else f"failed (exit {verify.exit_code})"
    return f"`{verify.command}` {verdict}"


def _verdict(state: MissionState) -> str:
    if state.approved is None:
        return "none yet" if not state.findings else "rejected (earlier iteration)"
    return "approved" if state.approved else f"rejected, {len(state.findings)} finding(s)"
