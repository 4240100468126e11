"""Open LlamaGen's released text-to-image checkpoints and convert them into one argen folder.

Released files (Hugging Face ``peizesun/llamagen_t2i``): ``t2i_XL_stage1_256.pt``,
``t2i_XL_stage2_512.pt`` (the GPTs) and ``vq_ds16_t2i.pt`` (the tokenizer), torch pickles read with
``weights_only=True``; the weights sit under ``"model"`` (or ``"module"``/``"state_dict"``, as for
the class-conditional files). ``autoregressive/train/train_t2i.py`` saves its ``argparse.Namespace``
beside them, so that one plain-data class is allowed through the safe unpickler; nothing else is.
A file records neither its resolution nor its size name, so the converted folder's config.json
says them (:class:`T2IConfig`); that config.json is how the family is recognised.

Converted folder: ``config.json`` (``"family": "llamagen_t2i"``), ``model.safetensors`` (argen's
names: ``gpt.*``, ``cap_proj.fc1/fc2``, ``uncond_embedding``), ``tokenizer/`` (the VQ, as
:func:`argen.modalities.image.llamagen.convert.save_llamagen_vq` writes it).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import torch

from argen.checkpoints.argen_format import check_state, read_json, read_safetensors, save_folder
from argen.checkpoints.files import sha256_file
from argen.engine.transformer import rope_freqs
from argen.errors import ArgenError
from argen.modalities.image.llamagen.convert import load_llamagen_vq, read_llamagen_state, save_llamagen_vq
from argen.modalities.image.llamagen.gpt import from_llamagen_state
from argen.modalities.image.llamagen.vq import LlamaGenVQ, LlamaGenVQConfig
from argen.modalities.image.llamagen_t2i.config import FAMILY, T2I_SIZES, T2IConfig, matches

_CAPTION = {"cls_embedding.cap_proj.fc1.weight": "cap_proj.fc1.weight",
            "cls_embedding.cap_proj.fc2.weight": "cap_proj.fc2.weight",
            "cls_embedding.uncond_embedding": "uncond_embedding"}
HINT = "pass a LlamaGen text-to-image GPT such as t2i_XL_stage1_256.pt"


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The flat state dict of an official LlamaGen file (see the module docstring)."""
    path = Path(path)
    if path.is_file() and path.suffix != ".safetensors":
        with open(path, "rb") as f:
            head = f.read(2)
        if head[:2] != b"PK" and head[:1] != b"\x80":  # torch.save's zip archive, or a legacy pickle
            raise ArgenError(f"{path} is not a PyTorch checkpoint (neither a torch.save archive nor a pickle)",
                             hint=HINT)
    with torch.serialization.safe_globals([argparse.Namespace]):
        return read_llamagen_state(path)


def infer_model(state: dict[str, torch.Tensor], source: str) -> str:
    """The GPT size name from the weights' width and depth."""
    if "tok_embeddings.weight" not in state:
        raise ArgenError(f"{source}: no 'tok_embeddings.weight'; not a LlamaGen GPT", hint=HINT)
    dim = state["tok_embeddings.weight"].shape[1]
    layers = 1 + max((int(m[1]) for k in state if (m := re.match(r"layers\.(\d+)\.", k))), default=-1)
    for name, (n_layer, _, width) in T2I_SIZES.items():
        if (n_layer, width) == (layers, dim):
            return name
    raise ArgenError(f"{source}: no LlamaGen model has {layers} layers of width {dim}",
                     hint=f"known sizes: {', '.join(T2I_SIZES)}")


def from_official_state(state: dict[str, torch.Tensor], cfg: T2IConfig, source: str = "checkpoint"):
    """An official text-to-image GPT state dict -> :class:`LlamaGenT2I` (CPU, float32, eval)."""
    from argen.modalities.image.llamagen_t2i.model import LlamaGenT2I

    if "cls_embedding.embedding_table.weight" in state:
        raise ArgenError(f"{source} is a class-conditional LlamaGen GPT, not a text-to-image one",
                         hint="class-conditional models take class ids; " + HINT)
    missing = sorted(set(_CAPTION) - set(state))
    if missing:
        raise ArgenError(f"{source}: no {missing[0]!r}; not a LlamaGen text-to-image GPT", hint=HINT)
    caption = {new: state[old] for old, new in _CAPTION.items()}
    rest = {k: v for k, v in state.items() if k not in _CAPTION}
    with torch.device("meta"):
        model = LlamaGenT2I(cfg)
    converted = {**caption, **{f"gpt.{k}": v for k, v in from_llamagen_state(rest, model.gpt.cfg).items()}}
    return _assign(model, converted, source)


def _assign(model, state: dict[str, torch.Tensor], source: str):
    check_state(state, {k: v.shape for k, v in model.state_dict().items()}, source, "LlamaGen T2I config",
                hint="the checkpoint is another model size or resolution than the config says")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    model.gpt.inv_freq = rope_freqs(model.gpt.cfg)  # a non-persistent buffer, not in the state
    return model.eval()


def load_official(gpt_path: str | Path, image_size: int, model: str | None = None,
                  cfg: T2IConfig | None = None):
    """The GPT from an official ``t2i_*.pt``; ``image_size`` (256 for stage 1, 512 for stage 2)
    is required since the file does not record it; ``model`` is inferred from the weights."""
    state = read_checkpoint(gpt_path)
    if cfg is None:
        cfg = T2IConfig(model=model or infer_model(state, str(gpt_path)), image_size=image_size)
    return from_official_state(state, cfg, str(gpt_path))


def convert_llamagen_t2i(gpt_path: str | Path, vq_path: str | Path, out_dir: str | Path, *, image_size: int,
                         model: str | None = None, cfg: T2IConfig | None = None,
                         vq_cfg: LlamaGenVQConfig | None = None, dtype: torch.dtype = torch.float32,
                         name: str | None = None) -> Path:
    """Official GPT + tokenizer -> an argen folder (see the module docstring); returns ``out_dir``."""
    gpt_path, vq_path, out = Path(gpt_path), Path(vq_path), Path(out_dir)
    t2i = load_official(gpt_path, image_size, model, cfg)
    vq = load_llamagen_vq(vq_path, vq_cfg)
    sources = {"gpt": {"file": gpt_path.name, "sha256": sha256_file(gpt_path)},
               "vq": {"file": vq_path.name, "sha256": sha256_file(vq_path)}}
    save_llamagen_vq(out / "tokenizer", vq, dtype, extra={"source": sources["vq"]})
    save_folder(out, t2i.state_dict(), {
        "modality": "image", "family": FAMILY, "name": name or f"llamagen-t2i-{t2i.t2i.model}-{t2i.t2i.image_size}",
        "llamagen_t2i": t2i.t2i.to_dict(), "tokenizer": "tokenizer", "source": sources}, dtype)
    return out


def load_folder(path: str | Path) -> tuple[Any, LlamaGenVQ, dict[str, Any]]:
    """A folder written by :func:`convert_llamagen_t2i`: (model, VQ, config.json), CPU float32."""
    from argen.modalities.image.llamagen_t2i.model import LlamaGenT2I

    path = Path(path)
    if not path.is_dir():
        raise ArgenError(f"{path} is not a model folder" + (" (it is a file)" if path.is_file() else ""),
                         hint="convert the official files first (convert_llamagen_t2i), then pass that folder")
    if not (path / "config.json").is_file():
        raise ArgenError(f"{path} has no config.json, so it is not a checkpoint folder",
                         hint="convert the official files first (convert_llamagen_t2i)")
    meta = read_json(path / "config.json")
    if not matches(meta):
        family = meta.get("family") or meta.get("model_type") or "unknown"
        raise ArgenError(f"{path} holds a {family!r} model, not a LlamaGen text-to-image one",
                         hint="pass a folder made by convert_llamagen_t2i")
    try:
        cfg = T2IConfig.from_dict(meta["llamagen_t2i"])
    except (KeyError, TypeError, ValueError) as e:
        raise ArgenError(f"{path / 'config.json'}: invalid llamagen_t2i config ({e})",
                         hint="the file is corrupt") from None
    with torch.device("meta"):
        model = LlamaGenT2I(cfg)
    model = _assign(model, read_safetensors(path / "model.safetensors"), str(path))
    return model, load_llamagen_vq(path / meta.get("tokenizer", "tokenizer")), meta


def convert_files(sources: list[Path], out: Path, name: str | None = None, **options: Any) -> Path:
    """``argen weights convert --family llamagen_t2i VQ GPT --option image_size=256`` and `argen weights
    pull llamagen-t2i-xl-256`: the tokenizer's file, then the GPT's."""
    from argen.errors import UsageError

    if len(sources) != 2:
        raise UsageError(f"llamagen_t2i conversion takes two files (the tokenizer's, then the GPT's), got {len(sources)}",
                         hint="e.g. vq_ds16_t2i.pt t2i_XL_stage1_256.pt")
    if "image_size" not in options:
        raise UsageError("llamagen_t2i conversion needs the image size (the files do not record it)",
                         hint="256 for t2i_XL_stage1_256.pt, 512 for t2i_XL_stage2_512.pt")
    vq_path, gpt_path = sources
    return convert_llamagen_t2i(gpt_path, vq_path, out, image_size=int(options.pop("image_size")), name=name, **options)
