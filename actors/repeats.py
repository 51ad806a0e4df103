"""Recognising a repeated failure: what changes from run to run is masked before comparing.

The no-progress stop compares an iteration's findings and check output with the previous
ones.  Raw output never repeats: pytest prints its run time (``1 failed in 0.12s``), and the
width of its ``====`` rules follows the length of that line, and its short summary lines are
cut at the terminal's width wherever that falls; tracebacks hold memory addresses,
temporary folders (``/tmp/pytest-of-root/pytest-12/``), timestamps, pids, random seeds and
ports.  :func:`mask_volatile` replaces each with a fixed token, so two runs of the same failing
tests give the same text while a different failure (another value, line or test) stays
different.
"""

from __future__ import annotations

import hashlib
import re

_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), token)
    for pattern, token in (
        (r"\x1b\[[0-9;?]*[A-Za-z]", ""),  # colours and cursor moves
        # pytest cuts its short summary lines at the terminal's width: where depends on the
        # length of the raw message (a pytest-9 or pytest-10 folder), so the tail is dropped
        (r"(?m)^((?:FAILED|ERROR) \S+) - .*\.\.\.$", r"\1 - ..."),
        (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>"),
        (
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
            "<time>",
        ),
        (r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<time>"),
        (r"\b0x[0-9a-fA-F]{6,}\b", "0x<addr>"),
        (r"(?:/private)?/tmp/pytest-of-[^/\s]+/pytest-\d+", "<tmp>"),
        (r"(?:/private)?/var/folders/[^\s/]+/[^\s/]+/T/[^\s/'\"]+", "<tmp>"),
        (r"/(?:var/)?tmp/tmp[a-z0-9_]{8}\b", "<tmp>"),
        (r"(?i)\b(\w*seed\w*)(\W{1,3})\d+", r"\1\2<seed>"),
        (r"(?i)\b(pid|process)(\W{1,3})\d+", r"\1\2<pid>"),
        (r"\b(localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\]):\d{2,5}\b", r"\1:<port>"),
        (
            r"(?<![\w.])\d+(?:\.\d+)?\s?(?:ms|µs|us|ns|s|sec|secs|seconds?|mins?|minutes?)\b",
            "<duration>",
        ),
        (r"([=\-_*#~])\1{3,}", r"\1\1\1"),  # rules whose width follows the line's length
        (r"[ \t]+", " "),
        (r" ?\n ?", "\n"),
    )
)


def mask_volatile(text: str) -> str:
    """``text`` with durations, timestamps, addresses, temp paths, seeds, pids and ports
    replaced by fixed tokens, and runs of spaces and rule characters made one width."""
    for pattern, token in _RULES:
        text = pattern.sub(token, text)
    return text.strip()


def fingerprint(text: str) -> str:
    """A short stable digest of the masked text, for recording what repeated in an event."""
    return hashlib.sha256(mask_volatile(text).encode("utf-8")).hexdigest()[:16]


def same_failure(previous: str, current: str) -> bool:
    """Whether two findings or check outputs say the same thing once the noise is masked."""
    return mask_volatile(previous) == mask_volatile(current)
