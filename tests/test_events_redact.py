"""Redaction: the fast gate lets through all the old one did; keys added at run time go too."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ocactors.events import Journal, Redactor, create_mission_dir, encode
from ocactors.events import catalogue as ev
from ocactors.events.redact import _PATTERNS, REDACTED, _replacement, may_hold_a_key

# The gate as it was: fourteen scans of a decoded, lower-cased copy.
OLD_TRIGGERS = (
    "sk-",
    "bearer",
    "akia",
    "ghp_",
    "gho_",
    "ghs_",
    "ghu_",
    "ghr_",
    "github_pat_",
    "authorization",
    "x-api-key",
    "api_key",
    "api-key",
    "apikey",
)


def old_gate(text: str) -> bool:
    lowered = text.lower()
    return any(trigger in lowered for trigger in OLD_TRIGGERS)


def old_text(text: str) -> str:
    """The redactor of before (no secrets): patterns only when the old gate let them."""
    if not old_gate(text):
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(_replacement, text)
    return text


PIECES = [
    *OLD_TRIGGERS,
    *(t.upper() for t in OLD_TRIGGERS),
    "Bearer ",
    "AKIA",
    '"',
    "\\",
    ": ",
    "abcdefghijklmnopqrstuvwxyz0123456789",
    "\u212a",  # KELVIN SIGN, lower-cases to an ASCII k
    "\u0130",  # LATIN CAPITAL I WITH DOT, lower-cases to i + a combining dot
    "é",
    "“",
]
mixed = st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=12).map("".join)


@settings(max_examples=400)
@given(st.one_of(mixed, st.text()))
@example('{"API_\u212aEY": "abcdef"}')
def test_the_gate_lets_through_everything_the_old_gate_did(text: str) -> None:
    if old_gate(text):
        assert may_hold_a_key(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=400)
@given(mixed)
@example('{"API_\u212aEY": "abcdef"}')
def test_redaction_is_what_it_was_on_anything_shaped_like_a_key(text: str) -> None:
    assert Redactor(env_vars=()).text(text) == old_text(text)


def test_the_gate_is_exact_on_ascii() -> None:
    for trigger in OLD_TRIGGERS:
        assert may_hold_a_key(f"x {trigger.upper()} y".encode())
    assert not may_hold_a_key(b'{"type":"tool.returned","output":"def api(): return key"}')


def test_a_clean_line_comes_back_as_the_same_object() -> None:
    line = encode(ev.ToolReturned(session="s", call_id="c", name="n", output="all fine here"))
    assert Redactor(env_vars=()).line(line) is line


ODD_KEYS = ["Zq9x~key 42", 'quote"and\\back', "çlé-ünïcode-ключ"]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_a_key_registered_at_run_time_is_redacted_whatever_its_shape(
    tmp_path: Path, key: str
) -> None:
    paths = create_mission_dir(tmp_path, "20261125-000000-abcd")
    with Journal.open(paths.events, mission="m", redactor=Redactor(env_vars=())) as journal:
        before = ev.ModelFailed(session="s", turn=1, error="nothing to hide yet")
        journal.append(before, actor="w")
        assert journal.redactor.add_secret(key)
        leaked = ev.ModelFailed(session="s", turn=2, error=f"401 for key {key}!")
        stamped = journal.append(leaked, actor="w").event
        journal.append(
            ev.ToolCalled(
                session="s", turn=2, call_id="c", name="n", arguments=f'{{"k": "{key}"}}'
            ),
            actor="w",
        )
    assert isinstance(stamped, ev.ModelFailed) and stamped.error == f"401 for key {REDACTED}!"
    text = paths.events.read_text()
    escaped = msgspec.json.encode(key).decode()[1:-1]  # how JSON carries it
    assert key not in text and escaped not in text
    assert text.count(REDACTED) == 2


def test_values_too_short_to_be_keys_are_refused() -> None:
    redactor = Redactor(env_vars=())
    assert not redactor.add_secret("test")
    assert redactor.text("a test of tests") == "a test of tests"
    assert redactor.add_secret("tests-key")
    assert redactor.text("x tests-key y") == f"x {REDACTED} y"
