"""Open any supported model folder: argen's own format or a Hugging Face one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from argen.checkpoints.argen_format import load_model_dir, read_json
from argen.checkpoints.hf_convert import is_hf_folder, load_hf_folder
from argen.engine.transformer import Transformer
from argen.errors import ArgenError


def load_transformer(path: str | Path) -> tuple[Transformer, dict[str, Any]]:
    """Returns the model (CPU, float32, eval) and a dict with ``format`` ("argen" or "hf"),
    ``tokenizer`` (path or None), ``eos_token_id``, ``modality`` and the folder's config."""
    path = Path(path)
    if path.is_file():
        raise ArgenError(f"{path} is a file; a model is a folder with config.json and weights",
                         hint="pass the folder that holds the file")
    if not (path / "config.json").is_file():
        raise ArgenError(f"{path} has no config.json",
                         hint="a model folder needs config.json (argen or Hugging Face) beside its weights")
    if is_hf_folder(path):
        model, info = load_hf_folder(path)
        return model, {"format": "hf", "modality": "text", **info}
    meta = read_json(path / "config.json")
    if meta.get("format") != "argen":
        raise ArgenError(f"{path / 'config.json'} is neither an argen nor a Hugging Face config",
                         hint="it needs \"format\": \"argen\" or a \"model_type\"")
    model, meta = load_model_dir(path)
    tok = meta.get("tokenizer")
    return model, {"format": "argen", "modality": meta.get("modality"), "tokenizer": str(path / tok) if tok else None,
                   "eos_token_id": meta.get("eos_token_id"), "bos_token_id": None, "name": meta.get("name"),
                   "config": meta}
