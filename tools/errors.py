"""Errors of the tools, all of which end up as tool results the model can read.

::

    ToolError                  a call the model can fix: bad path, bad arguments, no match
    └── ConfinementError       a path outside the workspace or outside the task's lease
"""

from __future__ import annotations


class ToolError(Exception):
    """The message goes to the model as an error tool result."""


class ConfinementError(ToolError):
    """A path that leads outside the workspace, or a write outside the lease."""
