"""Events to JSON lines and back, with one module-level decoder for the whole union.

A line of a known type with invalid fields, or a line that is not JSON, is corrupt.  A line of
a type this version does not know (a log from a newer ocactors) decodes to
:class:`UnknownEvent`, keeping the raw record, so older readers can still show it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ocactors.events.catalogue import KNOWN_TYPES, AnyEvent, Record, UnknownEvent

KNOWN: msgspec.json.Decoder[Any] = msgspec.json.Decoder(AnyEvent)
"""The known events alone: raises msgspec's errors; :func:`decode` handles the rest."""
_generic = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class LineError(ValueError):
    """A line that is not an event; the message says why."""


def encode(event: Record) -> bytes:
    """The event as one JSON object, without the newline."""
    if isinstance(event, UnknownEvent):
        envelope = {k: getattr(event, k) for k in ("seq", "ts", "mission", "actor", "cause")}
        envelope = {k: v for k, v in envelope.items() if v is not None}
        return _encoder.encode({**event.raw, **envelope, "type": event.type})
    return _encoder.encode(event)


def decode(line: bytes) -> Record:
    """One line to an event; raises LineError for anything that is not one."""
    try:
        return KNOWN.decode(line)  # type: ignore[no-any-return]
    except msgspec.ValidationError as error:
        return _unknown(line, error)
    except msgspec.DecodeError as error:
        raise LineError(f"not JSON: {error}") from None


def _unknown(line: bytes, error: msgspec.ValidationError) -> UnknownEvent:
    try:
        raw = _generic.decode(line)
    except msgspec.DecodeError as decode_error:  # pragma: no cover - validated above
        raise LineError(str(decode_error)) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise LineError(f"not an event: {error}")
    if raw["type"] in KNOWN_TYPES:
        raise LineError(f"invalid {raw['type']}: {error}")
    try:
        return UnknownEvent(
            seq=int(raw.get("seq", 0)),
            ts=str(raw.get("ts", "")),
            mission=str(raw.get("mission", "")),
            actor=str(raw.get("actor", "")),
            cause=raw.get("cause") if isinstance(raw.get("cause"), int) else None,
            type=raw["type"],
            raw=raw,
        )
    except (TypeError, ValueError) as bad:
        raise LineError(f"invalid envelope: {bad}") from None
