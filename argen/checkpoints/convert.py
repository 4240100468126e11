"""Public checkpoint formats -> argen model folders (safetensors + config.json). Each family's
converter lives beside the model it loads; this module only dispatches by family name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FAMILIES = ("var", "llamagen")


def convert(family: str, sources: list[Path], out: Path, **options: Any) -> Path:
    """Convert the checkpoint files ``sources`` (the tokenizer's, then the transformer's) of
    ``family`` into the folder ``out``; returns it."""
    from argen.errors import UsageError

    if len(sources) != 2:
        raise UsageError(f"{family} conversion takes two files (the tokenizer's, then the transformer's), "
                         f"got {len(sources)}", hint="e.g. vae_ch160v4096z32.pth var_d16.pth")

    if family == "var":
        from argen.modalities.image.var.convert import convert_var
        from argen.modalities.image.var.vqvae import VQVAEConfig

        if "vae" in options:  # a registry entry may describe a VAE other than the released one
            options["vae_cfg"] = VQVAEConfig.from_dict(options.pop("vae"))
        return convert_var(*sources, out, **options)
    if family == "llamagen":
        from argen.modalities.image.llamagen.convert import convert_llamagen
        from argen.modalities.image.llamagen.vq import LlamaGenVQConfig

        if "vq" in options:
            options["vq_cfg"] = LlamaGenVQConfig(**options.pop("vq"))
        return convert_llamagen(*sources, out, **options)
    raise UsageError(f"unknown checkpoint family {family!r}", hint=f"one of: {', '.join(FAMILIES)}")
