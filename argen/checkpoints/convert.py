"""Public checkpoint formats -> argen model folders (safetensors + config.json). Each family's
converter lives beside the model it loads (``convert_files(sources, out, **options)``); this
module only dispatches by family name, through import strings, so that the checkpoints layer
never imports a modality."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

# family -> "module:function" of its converter
CONVERTERS = {
    "var": "argen.modalities.image.var.convert:convert_files",
    "llamagen": "argen.modalities.image.llamagen.convert:convert_files",
    "crystallm": "argen.modalities.crystal.crystallm_convert:convert_files",
}
FAMILIES = tuple(CONVERTERS)


def convert(family: str, sources: list[Path], out: Path, name: str | None = None, **options: Any) -> Path:
    """Convert the checkpoint files ``sources`` of ``family`` into the folder ``out`` (``name``: the
    model's registered name, for converters that record it); returns it."""
    from argen.errors import UsageError

    if family not in CONVERTERS:
        raise UsageError(f"unknown checkpoint family {family!r}", hint=f"one of: {', '.join(FAMILIES)}")
    module, attr = CONVERTERS[family].split(":")
    fn = getattr(importlib.import_module(module), attr)
    return fn(list(sources), out, name=name, **options)
