"""Landlock through ctypes: which paths a command may read and write, enforced by the kernel.

Landlock (Linux >= 5.13) lets an unprivileged process restrict itself and everything it starts:
a ruleset names the access rights it *handles*; any handled right not granted by a rule on a
path (or one of its ancestors) is refused with EACCES.  Rules only ever allow, so "the workspace
but not its ``.git``" is written by :func:`grant_except`, which splits a tree along the way to
each excluded path and grants the siblings instead.  The kernel also keeps a Landlocked process
from ptracing anything outside its domain, which is what makes ``/proc/<parent>/environ``
unreadable, and (ABI >= 4) from TCP ``connect``/``bind``, (ABI >= 6) from signalling processes
outside the domain or reaching their abstract unix sockets.

This module runs in two places: in ocactors (``abi_version``, :func:`grant_except` to plan the
rules) and in the launcher ``_sandbox_exec.py``, a separate ``python -I -S`` that applies them
(:func:`restrict`).  It therefore imports only ``os`` and ``ctypes``, which keeps that
interpreter's start short.
"""

from __future__ import annotations

import ctypes
import os

SYS_CREATE_RULESET = 444  # the same number on every architecture that has Landlock
SYS_ADD_RULE = 445
SYS_RESTRICT_SELF = 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECURE_NOROOT = 0x2F  # NOROOT, NO_SETUID_FIXUP and KEEP_CAPS, each locked: uid 0 gains nothing
CAPABILITY_VERSION_3 = 0x20080522

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

READ = READ_FILE
WRITE = (
    WRITE_FILE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_CHAR
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SOCK
    | MAKE_FIFO
    | MAKE_BLOCK
    | MAKE_SYM
    | REFER
    | TRUNCATE
)
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE
"""The only rights a rule on a file (not a directory) may carry."""


class LandlockError(OSError):
    """The kernel refused a Landlock call (no Landlock, or a path that cannot be opened)."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_prctl = _libc.prctl
_prctl.restype = ctypes.c_int


def abi_version() -> int:
    """The kernel's Landlock ABI (1 on 5.13 ... 7 on 6.15), or 0 where it has none."""
    version = _syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), CREATE_RULESET_VERSION)
    return max(int(version), 0)


def supported(abi: int) -> int:
    """The file-system rights this ABI knows among the ones we handle."""
    rights = READ | WRITE
    if abi < 2:
        rights &= ~REFER
    if abi < 3:
        rights &= ~TRUNCATE
    return rights


def prctl(option: int, value: int) -> None:
    """prctl(option, value); OSError if the kernel refuses."""
    if _prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def drop_capabilities() -> None:
    """No capability survives, for this process or what it executes, even as root.

    A root command keeping its capabilities would step around Landlock where the kernel trusts
    capabilities first: with CAP_SYS_ADMIN or CAP_PERFMON ``/proc/<pid>/environ`` of any
    process is readable whatever the ptrace rules say.
    """
    if os.geteuid() == 0:
        prctl(PR_SET_SECUREBITS, SECURE_NOROOT)
        for cap in range(64):
            if _prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
                break  # past the last capability this kernel knows
    _prctl(PR_CAP_AMBIENT, ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0)
    header, data = _CapHeader(CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if _libc.capset(ctypes.byref(header), data) != 0:
        _fail("capset")


def restrict(rules: list[tuple[int, str]], fs: int, net: int, scoped: int) -> None:
    """Restrict this process (and what it starts) to ``rules``: ``(rights, path)`` pairs.

    ``fs``, ``net`` and ``scoped`` are the handled masks; a path that no longer exists is
    skipped (nothing can be granted on it, so nothing is lost).
    """
    attr = _RulesetAttr(fs, net, scoped)
    ruleset = _syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    if ruleset < 0:
        _fail("landlock_create_ruleset")
    try:
        for rights, path in rules:
            _add_path_rule(int(ruleset), rights & fs, path)
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        if _syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), 0) != 0:
            _fail("landlock_restrict_self")
    finally:
        os.close(ruleset)


def _add_path_rule(ruleset: int, rights: int, path: str) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if os.fstat(fd).st_mode & 0o170000 != 0o040000:  # not a directory
            rights &= FILE_RIGHTS
        if rights:
            rule = _PathBeneathAttr(rights, fd)
            if _syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
                _fail(f"landlock_add_rule({path})")
    finally:
        os.close(fd)


def _fail(call: str) -> None:
    err = ctypes.get_errno()
    raise LandlockError(err, f"{call}: {os.strerror(err)}")


def grant_except(root: str, rights: int, excluded: set[str]) -> list[tuple[int, str]]:
    """Rules granting ``rights`` on the tree ``root`` except on each path in ``excluded``.

    Landlock has no deny rule, so a directory on the way to an excluded path gets no rule of its
    own; its other entries get ``rights`` (symlinks are skipped: a rule follows them, and one
    pointing out would grant its target).  A new entry made later in a split directory has no
    rule, which is the price: the workspace root, holding ``.git``, takes no new files.
    """
    below = {p for p in excluded if p == root or p.startswith(root.rstrip("/") + "/")}
    if root in below:
        return []
    if not below:
        return [(rights, root)]
    rules: list[tuple[int, str]] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    for entry in entries:
        if not entry.is_symlink():
            rules += grant_except(entry.path, rights, below)
    return rules
