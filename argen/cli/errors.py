"""Turning failures into one line ``Error: ...`` plus a hint; ARGEN_DEBUG=1 shows tracebacks."""

from __future__ import annotations

import os
import sys
import traceback


def debug() -> bool:
    return os.environ.get("ARGEN_DEBUG", "") not in ("", "0")


def printable(text: str) -> str:
    """``text`` with every non-printable character (terminal control sequences: ESC, CSI, BEL...)
    escaped as ``\\xNN``/``\\uNNNN``, so that a file's contents or name cannot retitle or clear
    the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def fail(message: str, hint: str | None, code: int) -> int:
    first = printable(" ".join(str(message).split())) or "unknown error"
    print(f"Error: {first}", file=sys.stderr)
    if hint:
        print(f"Hint: {printable(hint)}", file=sys.stderr)
    return code


def is_click(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is click's exception ``name`` (Typer may ship its own copy of click)."""
    return any(c.__name__ == name and "click" in c.__module__ for c in type(exc).__mro__)


def report(exc: BaseException) -> int:
    """Print ``exc`` for a user and return the exit code."""
    from argen.errors import ArgenError

    if debug():
        traceback.print_exception(exc)
    if isinstance(exc, ArgenError):
        return fail(exc.message, exc.hint, exc.exit_code)
    if is_click(exc, "UsageError"):
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "argen"
        return fail(exc.format_message(), f"see `{where} --help`", 2)
    if isinstance(exc, KeyboardInterrupt):
        return fail("interrupted", "nothing half-written was left behind", 130)
    if isinstance(exc, MemoryError):
        return fail("out of memory", "use a smaller model, batch or --max-new-tokens", 1)
    if is_click(exc, "ClickException"):
        return fail(exc.format_message(), "see `argen --help`", getattr(exc, "exit_code", 1))
    if isinstance(exc, OSError) and exc.filename:
        return fail(f"{exc.strerror or exc}: {exc.filename}", "check the path and its permissions", 1)
    return fail(f"internal error: {type(exc).__name__}: {exc}", "rerun with ARGEN_DEBUG=1 for the traceback and report it", 1)
