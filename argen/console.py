"""Messages for people: progress and statistics go to stderr; stdout is for results."""

from __future__ import annotations

import sys


def log(message: str, quiet: bool = False) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)
