"""What a model may do to the workspace: confined to it, and writing only what it leases.

- :class:`Workspace` resolves every path (no ``..``, absolute paths or symlinks out; never
  ``.opencode/`` or ``.git/``; writes only inside the lease);
- :class:`ToolSpec` is a function plus the msgspec Struct of its arguments (the schema the
  model sees is derived from it); :class:`Toolbox` runs them and never raises;
- :func:`run_process` is the one runner of every command a mission starts (the model's
  and the checks'); files, search, shell and web hold the tools;
  :mod:`~ocactors.tools.toolsets` the sets per role.

Errors are drawn in :mod:`ocactors.tools.errors`.  This package imports nothing else of ours.
"""

from ocactors.tools.errors import ConfinementError, ToolError
from ocactors.tools.processes import ProcessGroups, ProcessResult, run_process
from ocactors.tools.shell import cap_output, command_env
from ocactors.tools.spec import (
    ShellConfig,
    Toolbox,
    ToolContext,
    ToolResult,
    ToolSpec,
    WebConfig,
)
from ocactors.tools.toolsets import planner_tools, reviewer_tools, worker_tools
from ocactors.tools.workspace import Workspace

__all__ = [
    "ConfinementError",
    "ProcessGroups",
    "ProcessResult",
    "ShellConfig",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "ToolSpec",
    "Toolbox",
    "WebConfig",
    "Workspace",
    "cap_output",
    "command_env",
    "planner_tools",
    "reviewer_tools",
    "run_process",
    "worker_tools",
]
