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


def registered_modality(model: str) -> str | None:
    """The modality the registry gives ``model`` (a registered name, or a hub id whose entries all
    share one), None for anything else; a name spelled as a path (``./NAME``) is a path."""
    from argen.checkpoints.hf_cache import is_hub_id, registered
    from argen.checkpoints.resolve import load_registry

    if model.startswith((".", "/", "~")):
        return None
    entry = load_registry().models.get(model)
    if entry is not None:
        return entry.modality
    if is_hub_id(model):
        found = {e.modality for _, e in registered(model)}
        return found.pop() if len(found) == 1 else None
    return None


def claimed_by(config: dict[str, Any] | None, path: Path, skip: str | None = None) -> str | None:
    """The modality whose families recognise a model (``skip`` left out): a specific family
    first, text's generic language models (any Hugging Face folder) last."""
    order = [name for name in MODALITIES if name != "text"] + ["text"]
    for name in order:
        if name != skip and any(cls.matches(config, path) for cls in MODALITIES[name].family_classes()):
            return name
    return None


def other_owner(config: dict[str, Any] | None, path: Path, modality: str) -> str | None:
    """The other modality a model belongs to: an argen folder's says so in config.json (nothing
    to import); a single file (no config.json) is left alone, since crystal takes any file."""
    if config is None:
        return None
    if config.get("format") == "argen":
        other = config.get("modality")
        return other if other in MODALITIES and other != modality else None
    return claimed_by(config, path, skip=modality)


def wrong_command(model: str, owner: str) -> ArgenError:
    """One line for a model given to another modality's command: which command runs it."""
    article = "an" if owner[0] in "aeiou" else "a"
    return ArgenError(f"{model} is {article} {owner} model: use argen {owner}",
                      hint=f"e.g. `argen {owner} --model {model} ...` (`argen models` lists each model's modality)")


def modality_of(model: str) -> str:
    """The modality of a registered model (by name or hub id), or of a folder from its config.json."""
    from argen.checkpoints.resolve import resolve

    known = registered_modality(model)
    if known is not None:
        return known
    ref = resolve(model)
    found = claimed_by(model_config(ref), ref.path)
    if found is None:
        raise ArgenError(f"{model}: no argen pipeline recognises this model", hint="see `argen models` for what argen runs")
    return found


def load(model: str | None = None, modality: str | None = None, *, device: str = "auto", dtype: str = "auto",
         compile: bool = False, **options: Any):
    """Load a pipeline: ``argen.load("shapes-next-token", device="cpu")("a red circle", n=2, seed=0)``.

    ``model``: a registered name, a hub id, or a folder; ``None`` with ``modality``: that
    modality's bundled default. ``options``: the modality's load flags (``quantize``
    for the families whose decoder is argen's transformer, ``sampler`` for text and image).
    """
    from argen.checkpoints.resolve import default_model, resolve

    if model is None and modality is None:
        raise UsageError("argen.load needs a model or a modality", hint='e.g. argen.load("shakespeare-char")')
    model = None if model is None else str(model)  # a pathlib.Path works too
    if modality is None:
        modality = modality_of(model)
    if modality not in MODALITIES:
        raise UsageError(f"unknown modality {modality!r}", hint=f"one of {', '.join(MODALITIES)}")
    spec = spec_of(modality)
    if model is None:
        model = spec.default_model(options) or default_model(modality)
    known = registered_modality(model)
    if known is not None and known != modality:  # said before looking for its files: it may not be downloaded
        raise wrong_command(model, known)
    ref = resolve(model, modality)
    config = model_config(ref)
    # text's generic path takes any Hugging Face folder: a specific family of another modality is asked first
    if modality == "text" and config is not None and config.get("format") != "argen":
        owner = claimed_by(config, ref.path, skip="text")
        if owner is not None:
            raise wrong_command(model, owner)
    for cls in MODALITIES[modality].family_classes():
        if cls.matches(config, ref.path):
            return cls.from_ref(ref, config, device=device, dtype=dtype, compile=compile, **options)
    owner = other_owner(config, ref.path, modality)
    if owner is not None:
        raise wrong_command(model, owner)
    what = (config or {}).get("modality") or (config or {}).get("model_type") or "unknown"
    article = "an" if modality[0] in "aeiou" else "a"
    raise ArgenError(f"{ref.name} is not {article} {modality} model (its config says {what})",
                     hint=f"pick {article} {modality} model (see `argen models`)")
