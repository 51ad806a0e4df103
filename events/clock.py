"""Event timestamps: ISO 8601 UTC with microseconds and a ``Z``."""

from __future__ import annotations

import time


class Clock:
    """Event timestamps, the date part cached.

    Formatting the date once a second makes a stamp ~5x cheaper than ``datetime.isoformat``.
    Not thread-safe on its own: the journal calls it under its lock.
    """

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        second, nanos = divmod(time.time_ns(), 1_000_000_000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{nanos // 1000:06d}Z"


def utc_now() -> str:
    """The event timestamp format: ISO 8601 UTC with microseconds and a ``Z``."""
    return Clock()()
