"""actors/models."""
