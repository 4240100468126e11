"""Text outputs: the text itself, metadata in a ``.meta.json`` sidecar (plain text has no slot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from argen.io.atomic import write_text_atomic
from argen.io.metadata import write_sidecar


def write_text(path: str | Path, text: str, meta: dict[str, Any]) -> Path:
    """Write ``text`` and its metadata atomically; returns the text file's path."""
    path = Path(path)
    write_sidecar(path, meta)
    write_text_atomic(path, text)
    return path
