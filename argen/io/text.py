"""Text outputs: the text itself, metadata in a ``.meta.json`` sidecar (plain text has no slot)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from argen.io.atomic import atomic_paths
from argen.io.metadata import sidecar_path


def write_text(path: str | Path, text: str, meta: dict[str, Any]) -> Path:
    """Write ``text`` and its metadata sidecar atomically, together: both land or neither does.
    Returns the text file's path."""
    path = Path(path)
    with atomic_paths(path, sidecar_path(path)) as (tmp, side):
        tmp.write_text(text, encoding="utf-8")
        side.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
