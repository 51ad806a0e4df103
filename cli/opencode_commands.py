"""The three OpenCode commands ``ocactors init --opencode`` writes, and how ``/task`` hands over
its goal without a shell ever reading it.

OpenCode expands a command file in its own process (1.18, ``SessionPrompt.command``): it puts
the user's text in place of ``$ARGUMENTS`` (JavaScript ``replaceAll``; ``opencode run`` first
wraps each argument that has a space in double quotes, escaping inner ones as ``\\"``), then
runs every ``!`...``` span, text included, as ``$SHELL -c <span>`` and replaces the span with
what it printed.  So the goal *is* shell text.  ``/task`` therefore puts it in the body of a
here-document whose delimiter is quoted, which POSIX shells (sh, dash, bash, zsh, ksh) pass
byte for byte to stdin, with no expansion of ``$``, backticks, quotes or backslashes::

    exec ocactors task --detach - 2>&1 <<'OCACTORS_GOAL_EOF'
    OCACTORS_GOAL_BEGIN
    <the user's text>
    OCACTORS_GOAL_END
    OCACTORS_GOAL_EOF

and ``ocactors task --detach -`` reads the goal from stdin between the two markers
(:func:`goal_from_block`).  What a shell cannot protect, the markers catch:

- a backtick in the goal ends OpenCode's ``!`...``` span early (its pattern is
  ``!`([^`]+)```), so the body arrives without ``OCACTORS_GOAL_END``: refused, one line;
- a goal line equal to the delimiter ends the here-document early: the END marker is missing
  again, and ``exec`` has already replaced the shell, so the lines after it never run;
- a goal line equal to a marker: refused.

What no command file can prevent (docs/opencode.md says so): text after a backtick stays in
the prompt, where OpenCode itself runs any ``!`...``` that follows; and OpenCode's
``replaceAll`` reads ``$$``, ``$&`` and ``$'`` in the text as patterns (``$'`` inserts the rest
of the template, which ends the goal there).  Fish and nu have
no here-documents: there the span fails to parse and nothing runs.  ``$N`` in a template is
OpenCode's positional placeholder, so the templates below use none.
"""

from __future__ import annotations

from ocactors.common import UsageError

BEGIN = "OCACTORS_GOAL_BEGIN"
END = "OCACTORS_GOAL_END"
EOF = "OCACTORS_GOAL_EOF"
NAMES = ("task", "status", "stop")

_TASK = f"""---
description: start an ocactors mission in the background (ocactors task --detach)
---
!`exec {{ocactors}} task --detach - 2>&1 <<'{EOF}'
{BEGIN}
$ARGUMENTS
{END}
{EOF}
`

The lines above are what `ocactors task --detach` answered. Tell the user in two or three
short lines: the mission id and the commands to watch it (`ocactors monitor`,
`ocactors tail -f`, `/status`, `/stop`), or the error and what to do about it.
Do not run any tool and do not start on the goal yourself: the mission works on it
in the background.
"""

_STATUS = """---
description: summarise the newest ocactors mission (ocactors status)
---
!`{ocactors} status 2>&1`

The lines above are `ocactors status` for the newest mission of this project. Summarise
them for the user in a few short lines: its state, tasks done and failed, what runs now,
and the next command to use. Do not run any tool.
"""

_STOP = """---
description: stop the running ocactors mission (ocactors stop; it stays resumable)
---
!`{ocactors} stop 2>&1`

The lines above are what `ocactors stop` answered. Tell the user in one or two short lines
whether the mission stopped and how to carry it on (`ocactors resume`). Do not run any tool.
"""

_TEMPLATES = {"task": _TASK, "status": _STATUS, "stop": _STOP}


def command_text(name: str, ocactors: str = "ocactors") -> str:
    """The markdown of command ``name``; ``ocactors`` is how its shell finds us (shell words)."""
    return _TEMPLATES[name].replace("{ocactors}", ocactors)


def goal_from_block(text: str) -> str:
    """The goal from what ``/task`` sent on stdin; plain text without markers is the goal.

    Raises UsageError when the block was cut or tampered with (see the module docstring).
    """
    lines = text.removesuffix("\n").split("\n")
    if lines[0] != BEGIN:
        return _required(text.strip())
    if lines[-1] != END or len(lines) < 2:
        raise UsageError(
            "the goal was cut short: OpenCode ends a shell command at the first backtick (`), "
            "so write the goal without backticks"
        )
    body = lines[1:-1]
    if BEGIN in body or END in body:
        raise UsageError(f"the goal contains a line {BEGIN} or {END}; write it differently")
    return _required(unwrap("\n".join(body).strip()))


def unwrap(text: str) -> str:
    """Undo ``opencode run``'s quoting of one argument with spaces: ``"a \\"b\\""`` -> ``a "b"``.

    Only a text that is exactly one such argument is unwrapped; anything else is kept.
    """
    inner = text[1:-1]
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    if '"' in inner.replace('\\"', ""):
        return text
    return inner.replace('\\"', '"')


def _required(goal: str) -> str:
    if not goal:
        raise UsageError('the goal is empty; say what the mission should achieve: /task "GOAL"')
    return goal
