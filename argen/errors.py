"""Errors a user can cause: shown as one line ``Error: ...`` plus a hint, never a traceback."""

from __future__ import annotations


class ArgenError(Exception):
    """A problem with the user's input or environment, with a hint on what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(ArgenError):
    """A flag or argument value out of range (exit code 2, like a parse error)."""

    exit_code = 2
