"""What a model may do to the workspace: confined to it, and writing only what it leases.

- :class:`Workspace` resolves every path (no ``..``, absolute paths or symlinks out; never
  ``.opencode/`` or ``.git/``; writes only inside the lease);
- :class:`ToolSpec` is a function plus the msgspec Struct of its arguments (the schema the
  model sees is derived from it); :class:`Toolbox` runs them and never raises;
- :func:`run_process` is the one runner of every command a mission starts (the model's
  and the checks'); files, search, shell and web hold the tools;
  :mod:`~ocactors.tools.toolsets` the sets per role;
- :mod:`~ocactors.tools.sandbox` confines every command (bubblewrap or Landlock) and
  :class:`LeaseGuard` puts back what a command changed outside its lease.

Errors are drawn in :mod:`ocactors.tools.errors`.  This package imports nothing else of ours.
"""

from ocactors.tools.errors import ConfinementError, ToolError
from ocactors.tools.lease_guard import LeaseGuard, LeaseReport, Snapshot
from ocactors.tools.processes import ProcessGroups, ProcessResult, run_process
from ocactors.tools.sandbox import (
    Prepared,
    SandboxUnavailable,
    detect_backend,
    prepare,
    require_backend,
)
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
    "LeaseGuard",
    "LeaseReport",
    "Prepared",
    "ProcessGroups",
    "ProcessResult",
    "SandboxUnavailable",
    "ShellConfig",
    "Snapshot",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "ToolSpec",
    "Toolbox",
    "WebConfig",
    "Workspace",
    "cap_output",
    "command_env",
    "detect_backend",
    "planner_tools",
    "prepare",
    "require_backend",
    "reviewer_tools",
    "run_process",
    "worker_tools",
]
