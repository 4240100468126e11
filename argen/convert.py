"""Public checkpoint formats -> argen model folders (safetensors + config.json). Each family's
converter lives beside the model it loads; this module only dispatches by family name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FAMILIES = ("var", "llamagen")


def convert(family: str, sources: list[Path], out: Path, **options: Any) -> Path:
    """Convert the checkpoint files ``sources`` of ``family`` into the folder ``out``."""
    from argen.errors import UsageError

    if family == "var":
        from argen.models.var_convert import convert_var

        return convert_var(sources, out, **options)
    if family == "llamagen":
        from argen.models.llamagen_convert import convert_llamagen

        return convert_llamagen(sources, out, **options)
    raise UsageError(f"unknown checkpoint family {family!r}", hint=f"one of: {', '.join(FAMILIES)}")
