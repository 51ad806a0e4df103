"""ocactors: an event-sourced multi-agent coding orchestrator."""

__version__ = "0.1.0"
