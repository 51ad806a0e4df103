"""``python -m ocactors``: the same command as the ``ocactors`` script (handy in a venv
whose ``bin`` is not on PATH, or to be sure which interpreter runs it)."""

from __future__ import annotations

import sys

from ocactors.cli import main

if __name__ == "__main__":
    sys.exit(main())
