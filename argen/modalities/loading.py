"""``argen.load``: a model name, hub id or folder -> the pipeline of its family.

The modality comes from the registry entry or the folder's config.json; the family from the
config too (each family's pipeline answers ``matches``), never from a file name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from argen.errors import ArgenError, UsageError
from argen.modalities.registry import MODALITIES, spec_of


def read_config(path: Path) -> dict[str, Any] | None:
    """A model folder's config.json, or a diffusers pipeline's model_index.json (None for a
    single-file checkpoint)."""
    if path.is_file():
        return None
    cfg = path / "config.json"
    if not cfg.is_file() and (path / "model_index.json").is_file():
        cfg = path / "model_index.json"
    if not cfg.exists():
        raise ArgenError(f"{path} has no config.json",
                         hint="a model folder needs config.json (argen or Hugging Face) beside its weights")
    from argen.io.files import read_utf8

    text = read_utf8(cfg, "model file", hint="a model folder needs config.json (argen or Hugging Face) beside its weights")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ArgenError(f"{cfg} is not valid JSON ({str(e)[:160]})", hint="the file is corrupt") from None
    if not isinstance(data, dict):
        raise ArgenError(f"{cfg} is not a JSON object", hint="the file is corrupt or from another tool")
    return data


def model_config(ref) -> dict[str, Any] | None:
    """A resolved model's config.json, with the registry's family (``ref.family``) as
    ``argen_family`` where the registry names one: a config that cannot tell its family (a
    fine-tune saved as its base model's) is recognised by the registry entry it came from."""
    config = read_config(ref.path)
    if config is not None and getattr(ref, "family", None):
        config = {**config, "argen_family": ref.family}
    return config


def modality_of(model: str) -> str:
    """The modality of a registered model (by name or hub id), or of a folder from its config.json."""
    from argen.checkpoints.hf_cache import is_hub_id, registered
    from argen.checkpoints.resolve import load_registry, resolve

    entry = load_registry().models.get(model)
    if entry is None and is_hub_id(model):
        entry = next((e for _, e in registered(model)), None)
    if entry is not None and not model.startswith((".", "/", "~")):
        return entry.modality
    ref = resolve(model)
    config = model_config(ref)
    for name, m in MODALITIES.items():
        if name == "text":
            continue  # generic language models last: a specific family claims its folder first
        if any(cls.matches(config, ref.path) for cls in m.family_classes()):
            return name
    if any(cls.matches(config, ref.path) for cls in MODALITIES["text"].family_classes()):
        return "text"
    raise ArgenError(f"{model}: no argen pipeline recognises this model", hint="see `argen models` for what argen runs")


def load(model: str | None = None, modality: str | None = None, *, device: str = "auto", dtype: str = "auto",
         compile: bool = False, **options: Any):
    """Load a pipeline: ``argen.load("shapes-next-token", device="cpu")("a red circle", n=2, seed=0)``.

    ``model``: a registered name, a hub id, or a folder; ``None`` with ``modality``: that
    modality's bundled default. ``options``: the modality's load flags (``quantize`` for text,
    ``sampler`` for image).
    """
    from argen.checkpoints.resolve import default_model, resolve

    if model is None and modality is None:
        raise UsageError("argen.load needs a model or a modality", hint='e.g. argen.load("shakespeare-char")')
    if modality is None:
        modality = modality_of(model)
    if modality not in MODALITIES:
        raise UsageError(f"unknown modality {modality!r}", hint=f"one of {', '.join(MODALITIES)}")
    spec = spec_of(modality)
    if model is None:
        model = spec.default_model(options) or default_model(modality)
    ref = resolve(model, modality)
    config = model_config(ref)
    for cls in MODALITIES[modality].family_classes():
        if cls.matches(config, ref.path):
            return cls.from_ref(ref, config, device=device, dtype=dtype, compile=compile, **options)
    what = (config or {}).get("modality") or (config or {}).get("model_type") or "unknown"
    article = "an" if modality[0] in "aeiou" else "a"
    raise ArgenError(f"{ref.name} is not {article} {modality} model (its config says {what})",
                     hint=f"pick {article} {modality} model (see `argen models`)")
