"""Rebuilding state: a fold of events through a pure ``apply``, and time travel to any seq."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from ocactors.events.catalogue import Record
from ocactors.events.reader import read_events

S = TypeVar("S")


def fold(apply: Callable[[S, Record], S], initial: S, events: Iterable[Record]) -> S:
    """``apply`` each event in order, starting from ``initial``."""
    state = initial
    for event in events:
        state = apply(state, event)
    return state


def state_at(path: Path, seq: int, apply: Callable[[S, Record], S], initial: S) -> S:
    """The state just after event ``seq`` of the log at ``path``."""
    return fold(apply, initial, read_events(path, until=seq))
