"""Helpers every command shares for what it prints and where it writes."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from argen.console import log  # noqa: F401 - re-exported for the commands
from argen.errors import UsageError


def check_preview(preview: Path | None) -> None:
    """``--preview`` pictures are PNG: any other suffix is a usage error before work starts."""
    if preview is not None and preview.suffix.lower() != ".png":
        raise UsageError(f"--preview {preview}: previews are written as PNG", hint="give a path ending in .png")


def sheet_path(pattern: Path) -> Path:
    """Where a contact sheet of the outputs of ``pattern`` goes: its name without the
    ``{i}``/``{seed}`` fields, plus ``-grid`` (``out/img-{seed}.png`` -> ``out/img-grid.png``)."""
    import re

    def strip(text: str) -> str:
        return re.sub(r"\{(i|seed)(:[^}]*)?\}", "", text)

    stem = strip(pattern.name[: len(pattern.name) - len(pattern.suffix)]).rstrip("-_.") or "image"
    return Path(strip(str(pattern.parent))) / f"{stem}-grid{pattern.suffix}"


def expand_output(pattern: Path, count: int) -> Callable[[int, int], Path]:
    """Output path for sample ``i`` with seed ``seed``: ``{i}`` and ``{seed}`` are filled in;
    several samples with neither placeholder get ``-{i}`` before the suffix."""
    text = str(pattern)
    if count > 1 and "{i" not in text and "{seed" not in text:
        text = str(pattern.with_name(f"{pattern.stem}-{{i}}{pattern.suffix}"))
    try:
        text.format(i=0, seed=0)
    except (KeyError, IndexError, ValueError) as e:
        raise UsageError(f"bad output pattern {str(pattern)!r}: {e}", hint="only {i} and {seed} may appear in -o") from None

    def path(i: int, seed: int) -> Path:
        return Path(text.format(i=i, seed=seed))

    return path
