"""The Landlock backend's launcher, run as ``python -I -S _sandbox_exec.py ARGS``.

``ARGS`` are ``PARENT FS NET SCOPED N`` then ``N`` rules ``RIGHTS:PATH`` then the command's argv.
Three processes, so that nothing the command starts outlives it (there is no PID namespace):

- the launcher (this process: the runner's child, leader of the group the runner kills on a
  timeout) dies with ocactors (``PR_SET_PDEATHSIG``), drops every capability (root included),
  applies the Landlock rules, forks the reaper and exits with its status;
- the reaper, in a session of its own so that killing the launcher's group spares it, is a child
  subreaper: whatever the command leaves behind (``setsid nohup x &``, double forks) is
  reparented to it.  When the command ends, or the launcher dies, it SIGKILLs every descendant,
  reaps them and exits with the command's status (128 + N for a signal);
- the command: it dies with the reaper and enters a Landlock domain nested in the reaper's, so
  it can neither ptrace nor signal the reaper (nor ocactors), then execs.

The rules are applied once, before the forks, and the children run as little Python as they
can: a fork of an interpreter costs in copied pages what it touches.  Run isolated (``-I -S``,
by the base interpreter): nothing from the workspace or a virtualenv's site-packages runs before
the rules are in force.  Imports only ``_signal``, ``os``, ``sys`` and the sibling
``landlock.py``.
"""

from __future__ import annotations

import _signal as signal  # type: ignore[import-not-found]  # C module: `signal` costs 3 ms
import os
import sys
from types import ModuleType

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM)


class _Stop(Exception):
    """The launcher died: stop waiting and clean up."""


def main(argv: list[str]) -> int:
    """Confine this process, start the reaper and return its status."""
    parent, fs, net, scoped, count = (int(x) for x in argv[:5])
    rules = [_rule(text) for text in argv[5 : 5 + count]]
    command = argv[5 + count :]
    landlock = _load_landlock()
    landlock.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        return 137  # ocactors died before we were ready
    try:
        landlock.drop_capabilities()
        landlock.restrict(rules, fs, net, scoped)
    except OSError as error:
        os.write(2, f"ocactors sandbox: cannot confine the command: {error}\n".encode())
        return 126
    launcher = os.getpid()
    reaper = os.fork()
    if reaper == 0:
        _reaper(landlock, launcher, scoped, command)
    return _exit_code(os.waitpid(reaper, 0)[1])


def _rule(text: str) -> tuple[int, str]:
    rights, _, path = text.partition(":")
    return int(rights), path


def _load_landlock() -> ModuleType:
    """The sibling landlock.py (``-I`` leaves the script's folder off sys.path; appended, it
    cannot shadow the standard library)."""
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    import landlock  # type: ignore[import-not-found,unused-ignore]

    return landlock  # type: ignore[no-any-return,unused-ignore]


def _reaper(landlock: ModuleType, launcher: int, scoped: int, command: list[str]) -> None:
    """Run the command, then kill whatever it left; never returns."""
    code = 137
    try:
        os.setsid()
        landlock.prctl(PR_SET_CHILD_SUBREAPER, 1)
        signal.signal(signal.SIGTERM, _raise_stop)
        landlock.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == launcher:
            child = os.fork()
            if child == 0:
                _command(landlock, scoped, command)
            code = _exit_code(os.waitpid(child, 0)[1])
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _kill_and_reap()
        os._exit(code)


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


def _command(landlock: ModuleType, scoped: int, command: list[str]) -> None:
    """A Landlock domain nested in the reaper's (it cannot ptrace or signal the reaper, or
    ocactors), then exec the command; never returns."""
    try:
        for signum in DEFAULT_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        landlock.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        landlock.restrict([], landlock.MAKE_BLOCK, 0, scoped)
        os.execv(command[0], command)
    except BaseException as error:
        os.write(2, f"ocactors sandbox: cannot start the command: {error}\n".encode())
    os._exit(126)


def _kill_and_reap() -> None:
    """SIGKILL every descendant until none is left (orphans come to us: we are the subreaper)."""
    me = os.getpid()
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            for descendant in _descendants(me):
                _kill(descendant)
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return


def _descendants(root: int) -> list[int]:
    """Every process below ``root``, from the parent field of /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            parent = _parent_of(name)
            if parent is not None:
                children.setdefault(parent, []).append(int(name))
    found, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _parent_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


def _kill(pid: int) -> None:
    try:  # noqa: SIM105 (contextlib would cost the launcher's start an import)
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
