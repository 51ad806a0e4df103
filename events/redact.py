"""The one redaction point: secrets never enter the log.

Every event the journal writes goes through :meth:`Redactor.line` on its encoded form.  It
removes the literal values of secret environment variables (read when the redactor is made)
and of every secret registered since with :meth:`Redactor.add_secret` (a key given with
``--api-key``, whatever its shape), and anything shaped like a key or credential: ``sk-...``
keys, ``Bearer`` tokens, AWS access key ids, GitHub tokens, header or JSON fields named
authorization or x-api-key, and a quoted ``"api_key": "..."`` field with a quoted value.  It
stays precise on purpose: code a worker writes (``api_key = settings.key``) is recorded as
written, because a resumed session replays its recorded tool calls.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping

import msgspec

REDACTED = "[REDACTED]"
DEFAULT_SECRET_ENV_VARS = ("OCACTORS_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")
MIN_SECRET_LENGTH = 6
_REDACTED_BYTES = REDACTED.encode()

_PATTERNS = [
    re.compile(r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/\-]{8,}=*"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"),
    re.compile(
        r"(?i)((?:\\?[\"'])?(?:authorization|x-api-key)(?:\\?[\"'])?\s*:\s*"
        r"(?:\\?[\"'])?)(?!\[REDACTED\])[^\"'\\\s,}]{4,}"
    ),
    # A quoted api_key field with a quoted value: JSON, a dict literal, a config file.
    re.compile(r"(?i)(\\?[\"']api[_-]?key\\?[\"']\s*:\s*\\?[\"'])(?!\[REDACTED\])[^\"'\\\s]{4,}"),
]


# Whether the (slower) patterns need to run at all: exactly when one of these appears in the
# lower-cased text.
TRIGGERS = (
    b"sk-",
    b"bearer",
    b"akia",
    b"ghp_",
    b"gho_",
    b"ghs_",
    b"ghu_",
    b"ghr_",
    b"github_pat_",
    b"authorization",
    b"x-api-key",
    b"api_key",
    b"api-key",
    b"apikey",
)
# A first look that finds each trigger, and only rarely anything else: four searches, each
# beginning with a letter that is rare in text, which ``re`` scans for quickly (an alternation
# of different first letters is 8x slower, ``in`` with a needle ending in a common letter 2x).
_ROUGH = tuple(
    re.compile(pattern).search
    for pattern in (
        rb"k(?:-|ia|(?<=pi_k)ey|(?<=pi-k)ey|(?<=pik)ey)",  # sk-, akia, x-api-key, api?key
        rb"bearer",
        rb"zation",  # authorization
        rb"g(?:ithub_pat_|h[pousr]_)",
    )
)
_KELVIN = "\u212a".encode()


def may_hold_a_key(raw: bytes) -> bool:
    """Whether a key-shaped pattern could match ``raw`` (UTF-8); False is the common case.

    True whenever a trigger is in the decoded, lower-cased text (the gate redaction always
    had), worked out on the encoded bytes: for ASCII, bytes.lower() is str.lower(); the only
    non-ASCII character whose lower case puts one of these letters next to another is the
    Kelvin sign (K -> k), whose presence sends the text to the patterns as well.
    """
    lowered = raw.lower()
    k_words, bearer, zation, github = _ROUGH  # unrolled: this is the hot path
    if (k_words(lowered) or bearer(lowered) or zation(lowered) or github(lowered)) and any(
        trigger in lowered for trigger in TRIGGERS
    ):
        return True
    return not raw.isascii() and _KELVIN in raw


class Redactor:
    """Replaces secrets with ``[REDACTED]``; cheap when there is nothing to replace.

    Thread-safe: :meth:`add_secret` may be called while the journal appends from other threads
    (the set of secrets is replaced whole, never changed in place).
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        env_vars: Iterable[str] = DEFAULT_SECRET_ENV_VARS,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.secrets: tuple[str, ...] = ()
        self._needles: tuple[bytes, ...] = ()
        self._lock = threading.Lock()
        for value in [*secrets, *(env.get(name, "") for name in env_vars)]:
            self.add_secret(value)

    def add_secret(self, value: str) -> bool:
        """Redact ``value`` from now on, whatever its shape (e.g. a key actually sent).

        Values shorter than :data:`MIN_SECRET_LENGTH` are refused (False): replacing every
        ``test`` of a log would ruin it.  True when ``value`` is (now) redacted.
        """
        if len(value) < MIN_SECRET_LENGTH:
            return False
        # The journal redacts encoded JSON, where a value with quotes or backslashes is escaped.
        forms = {value, msgspec.json.encode(value).decode()[1:-1]}
        with self._lock:
            secrets = sorted(set(self.secrets) | forms, key=len, reverse=True)
            self.secrets = tuple(secrets)
            self._needles = tuple(secret.encode() for secret in secrets)
        return True

    def line(self, raw: bytes) -> bytes:
        """``raw`` (UTF-8) with every secret replaced; the very same object when there is none."""
        for needle in self._needles:
            if needle in raw:
                raw = raw.replace(needle, _REDACTED_BYTES)
        if not may_hold_a_key(raw):
            return raw
        return _patterns(raw.decode("utf-8", "surrogatepass")).encode("utf-8", "surrogatepass")

    def text(self, value: str) -> str:
        """``value`` with every secret replaced."""
        raw = value.encode("utf-8", "surrogatepass")
        clean = self.line(raw)
        return value if clean is raw else clean.decode("utf-8", "surrogatepass")


def _patterns(value: str) -> str:
    for pattern in _PATTERNS:
        value = pattern.sub(_replacement, value)
    return value


def _replacement(match: re.Match[str]) -> str:
    prefix = match.group(1) if match.re.groups else ""
    return f"{prefix or ''}{REDACTED}"
