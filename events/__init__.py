"""The event log: catalogue, single-writer journal, readers, follow and folds."""
