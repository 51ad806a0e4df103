"""The one redaction point: secrets never enter the log.

Every event the journal writes goes through :meth:`Redactor.text` on its encoded form.  It
removes the literal values of secret environment variables (read when the redactor is made)
and anything shaped like a key or credential: ``sk-...`` keys, ``Bearer`` tokens, AWS access
key ids, GitHub tokens, header or JSON fields named authorization or x-api-key, and a quoted
``"api_key": "..."`` field with a quoted value.  It stays precise on purpose: code a worker
writes (``api_key = settings.key``) is recorded as written, because a resumed session replays
its recorded tool calls.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

import msgspec

REDACTED = "[REDACTED]"
DEFAULT_SECRET_ENV_VARS = ("OCACTORS_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")
MIN_SECRET_LENGTH = 6

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


# Cheap substring scans decide whether the (slower) patterns need to run at all.
_TRIGGERS = (
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


class Redactor:
    """Replaces secrets with ``[REDACTED]``; cheap when there is nothing to replace."""

    def __init__(
        self,
        secrets: Iterable[str] = (),
        env_vars: Iterable[str] = DEFAULT_SECRET_ENV_VARS,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        values = [*secrets, *(env.get(name, "") for name in env_vars)]
        literal = {v for v in values if len(v) >= MIN_SECRET_LENGTH}
        # The journal redacts encoded JSON, where a value with quotes or backslashes is escaped.
        escaped = {msgspec.json.encode(v).decode()[1:-1] for v in literal}
        self.secrets = sorted(literal | escaped, key=len, reverse=True)

    def text(self, value: str) -> str:
        """``value`` with every secret replaced."""
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        lowered = value.lower()
        if not any(trigger in lowered for trigger in _TRIGGERS):
            return value
        for pattern in _PATTERNS:
            value = pattern.sub(_replacement, value)
        return value


def _replacement(match: re.Match[str]) -> str:
    prefix = match.group(1) if match.re.groups else ""
    return f"{prefix or ''}{REDACTED}"
