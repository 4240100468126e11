"""Open LlamaGen's released checkpoints and convert them into one argen model folder.

Released files (Hugging Face repo ``FoundationVision/LlamaGen``): ``vq_ds16_c2i.pt`` (the
tokenizer) and ``c2i_{B,L}_{256,384}.pt``, ``c2i_XL_384.pt``, ``c2i_XXL_384.pt``,
``c2i_3B_384.pt`` (the GPTs). They are torch pickles of plain tensors, read with
``weights_only=True``. The weights sit under ``"model"`` (DDP training), ``"module"``
(DeepSpeed) or ``"state_dict"``, or at the top level (FSDP) -- the order in which
``autoregressive/sample/sample_c2i.py`` looks for them. Safetensors files in the same key
layout (e.g. from the reference's Hugging Face mixin classes) load too.

A converted folder holds the GPT (config.json + model.safetensors, argen's format) and the
tokenizer in ``tokenizer/`` (config.json + model.safetensors)::

    out/config.json  out/model.safetensors  out/tokenizer/config.json  out/tokenizer/model.safetensors
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from argen.checkpoints.argen_format import (
    build_model,
    first_line,
    load_model_dir,
    load_torch_file,
    read_json,
    read_safetensors,
    save_folder,
    save_model_dir,
)
from argen.checkpoints.files import sha256_file
from argen.engine.config import TransformerConfig
from argen.engine.transformer import Transformer
from argen.errors import ArgenError
from argen.modalities.image.llamagen.gpt import from_llamagen_state, infer_size, llamagen_config
from argen.modalities.image.llamagen.vq import USAGE_BUFFER, LlamaGenVQ, LlamaGenVQConfig

WRAPPERS = ("model", "module", "state_dict")

# the settings of the README's FID figures (GETTING_STARTED.md: --cfg-scale 2.0 for B and L,
# 1.75 for XL and XXL, 1.65 for 3B; sample_c2i_ddp.py: top-k 0, top-p 1, temperature 1)
CFG_SCALES = {"gpt-b": 2.0, "gpt-l": 2.0, "gpt-xl": 1.75, "gpt-xxl": 1.75, "gpt-3b": 1.65}


def read_llamagen_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The flat state dict of an official LlamaGen checkpoint (.pt/.pth or .safetensors)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    obj = load_torch_file(path)  # refuses pickles that would run code
    if isinstance(obj, dict):
        for key in WRAPPERS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ArgenError(f"{path} holds no LlamaGen state dict (looked under {', '.join(WRAPPERS)} and the top level)",
                         hint="pass a LlamaGen checkpoint such as vq_ds16_c2i.pt or c2i_B_256.pt")
    return obj


def vq_from_state(state: dict[str, torch.Tensor], cfg: LlamaGenVQConfig | None = None,
                  source: str = "checkpoint") -> LlamaGenVQ:
    """Build the tokenizer from an official-layout state dict; every key must match (only the
    codebook-usage statistic may be absent or present)."""
    with torch.device("meta"):
        vq = LlamaGenVQ(cfg)
    state = {k: v.float() for k, v in state.items() if k != USAGE_BUFFER}
    try:
        vq.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise ArgenError(f"{source}: not a LlamaGen VQ tokenizer of this configuration ({first_line(e)})",
                         hint="pass vq_ds16_c2i.pt (or a converted tokenizer folder)") from None
    return vq.eval()


def load_llamagen_vq(path: str | Path, cfg: LlamaGenVQConfig | None = None) -> LlamaGenVQ:
    """The tokenizer (CPU, float32, eval) from an official checkpoint or a converted folder
    (``tokenizer/`` of :func:`convert_llamagen`); ``cfg`` defaults to VQ-16."""
    path = Path(path)
    if path.is_dir():
        meta = read_json(path / "config.json")
        try:
            cfg = LlamaGenVQConfig(**meta["llamagen_vq"])
        except (KeyError, TypeError) as e:
            raise ArgenError(f"{path / 'config.json'}: not a LlamaGen tokenizer config ({first_line(e)})",
                             hint="the folder is not from convert_llamagen") from None
        return vq_from_state(read_safetensors(path / "model.safetensors"), cfg, str(path))
    return vq_from_state(read_llamagen_state(path), cfg, str(path))


def load_llamagen_gpt(path: str | Path, image_size: int | None = None, name: str | None = None,
                      cfg: TransformerConfig | None = None) -> Transformer:
    """The GPT (CPU, float32, eval) from an official checkpoint or a converted folder.

    A checkpoint does not record its resolution (2D RoPE has no table of positions), so
    ``image_size`` (256 or 384 for the released models) is required for one; ``name`` (e.g.
    "gpt-b") is inferred from the weights' width and depth when None. ``cfg`` (from
    :func:`llamagen_config` with ``size=``) replaces both for a model of another size.
    """
    path = Path(path)
    if path.is_dir():
        return load_model_dir(path)[0]
    if image_size is None and cfg is None:
        raise ArgenError(f"{path}: the image size of a LlamaGen checkpoint must be given",
                         hint="the file names say it: c2i_B_256.pt is 256, c2i_XL_384.pt is 384")
    state = read_llamagen_state(path)
    for key in ("tok_embeddings.weight", "cls_embedding.embedding_table.weight", "output.weight"):
        if key not in state:
            raise ArgenError(f"{path}: no {key!r}; not a class-conditional LlamaGen GPT",
                             hint="pass c2i_*.pt (text-to-image checkpoints are not supported)")
    cfg = cfg or llamagen_config(name or infer_size(state), image_size, vocab_size=state["output.weight"].shape[0],
                                 num_classes=state["cls_embedding.embedding_table.weight"].shape[0] - 1)
    converted = from_llamagen_state(state, cfg)
    return build_model(cfg, {k: v.float() for k, v in converted.items()}, str(path))


def save_llamagen_vq(out: str | Path, vq: LlamaGenVQ, dtype: torch.dtype = torch.float32,
                     extra: dict[str, Any] | None = None) -> None:
    """Write a tokenizer folder: model.safetensors and config.json (``"llamagen_vq": {...}``)."""
    save_folder(out, vq.state_dict(), {"modality": "image-tokenizer", "llamagen_vq": vq.cfg.to_dict(),
                                       **(extra or {})}, dtype)


def convert_llamagen(src_vq: str | Path, src_gpt: str | Path, out_dir: str | Path, *, image_size: int | None = None,
                     name: str | None = None, dtype: torch.dtype = torch.float32, cfg: TransformerConfig | None = None,
                     vq_cfg: LlamaGenVQConfig | None = None) -> Path:
    """Convert an official tokenizer + GPT pair into an argen folder (see the module docstring);
    returns ``out_dir``. ``image_size``, ``name`` and ``cfg`` are as in :func:`load_llamagen_gpt`;
    ``vq_cfg`` defaults to VQ-16. Each file is written atomically; config.json records the source
    files' names and sha256 and the sampling settings of the reference's FID runs."""
    src_vq, src_gpt, out = Path(src_vq), Path(src_gpt), Path(out_dir)
    vq = load_llamagen_vq(src_vq, vq_cfg)
    gpt = load_llamagen_gpt(src_gpt, image_size, name, cfg)
    info = gpt.cfg.extra["llamagen"]
    sources = {"gpt": {"file": src_gpt.name, "sha256": sha256_file(src_gpt)},
               "vq": {"file": src_vq.name, "sha256": sha256_file(src_vq)}}
    save_llamagen_vq(out / "tokenizer", vq, dtype, extra={"source": sources["vq"]})
    sampling = {"temperature": 1.0, "top_k": None, "top_p": None, "cfg_scale": CFG_SCALES.get(info["model"], 2.0)}
    save_model_dir(out, gpt, "image", dtype=dtype, extra={
        "family": "llamagen", "name": f"llamagen-{info['model']}-{info['image_size']}", "tokenizer": "tokenizer",
        "sampling": sampling,
        "llamagen": {**info, "source": sources}})
    return out


def load_llamagen_dir(path: str | Path) -> tuple[LlamaGenVQ, Transformer, dict[str, Any]]:
    """A folder written by :func:`convert_llamagen`: (tokenizer, GPT, the GPT's config.json)."""
    path = Path(path)
    gpt, meta = load_model_dir(path)
    if "llamagen" not in meta:
        raise ArgenError(f"{path} is not a converted LlamaGen folder", hint="make one with convert_llamagen")
    return load_llamagen_vq(path / meta.get("tokenizer", "tokenizer")), gpt, meta


def convert_files(sources: list[Path], out: Path, name: str | None = None, **options) -> Path:
    """``argen weights convert --family llamagen VQ GPT``: the VQ's file, then the transformer's."""
    from argen.errors import UsageError

    if len(sources) != 2:
        raise UsageError(f"llamagen conversion takes two files (the tokenizer's, then the transformer's), got {len(sources)}",
                         hint="e.g. vq_ds16_c2i.pt c2i_B_256.pt")
    if "vq" in options:
        options["vq_cfg"] = LlamaGenVQConfig(**options.pop("vq"))
    return convert_llamagen(*sources, out, **options)
