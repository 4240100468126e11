"""Load a CrystaLLM (nanoGPT-format) ``ckpt.pt`` onto argen's Transformer.

Facts from lantunes/CrystaLLM: crystallm/_model.py (a nanoGPT GPT: token table
``transformer.wte`` tied to ``lm_head``, learned positions ``transformer.wpe``, blocks
``transformer.h.N`` with ``ln_1``, ``attn.c_attn`` (one ``nn.Linear`` to q, k, v stacked in that
order), ``attn.c_proj``, ``ln_2``, ``mlp.c_fc``, tanh-approximated GELU, ``mlp.c_proj``, then
``transformer.ln_f``; LayerNorm eps 1e-5; every bias present or absent together with
``bias``; a non-flash build also stores its causal mask as ``attn.bias``), bin/train.py and
bin/sample.py (the checkpoint is a dict with ``model_args`` {n_layer, n_head, n_embd,
block_size, bias, vocab_size, dropout} and ``model``, the state dict, whose keys carry
``_orig_mod.`` when the model was compiled; ``optimizer``, ``iter_num``, ``best_val_loss`` and
``config`` ride along and are ignored here).

The file is opened with ``torch.load(weights_only=True)``: a checkpoint that needs pickled code
is refused, nothing in it is executed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from argen.checkpoints.argen_format import build_model, load_torch_file
from argen.engine.config import TransformerConfig
from argen.engine.transformer import Transformer
from argen.errors import ArgenError

PREFIX = "_orig_mod."
_LAYER = {  # nanoGPT block key -> argen block key (c_attn is split separately)
    "ln_1": "attn_norm", "attn.c_proj": "attn.o_proj", "ln_2": "mlp_norm",
    "mlp.c_fc": "mlp.up_proj", "mlp.c_proj": "mlp.down_proj",
}
_TOP = {"transformer.wte": "embed", "transformer.wpe": "pos_embed", "transformer.ln_f": "norm", "lm_head": "lm_head"}


def _refuse(path: Path, why: str) -> ArgenError:
    return ArgenError(f"{path} is not a CrystaLLM/nanoGPT checkpoint: {why}",
                      hint="expected the ckpt.pt that CrystaLLM's bin/train.py writes (model_args + model)")


def config_from_model_args(args: dict[str, Any]) -> TransformerConfig:
    """nanoGPT's ``model_args`` -> a GPT-2-style TransformerConfig."""
    missing = [k for k in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size") if k not in args]
    if missing:
        raise ValueError(f"model_args lacks {', '.join(missing)}")
    bias = bool(args.get("bias", True))
    return TransformerConfig(
        vocab_size=int(args["vocab_size"]), n_layer=int(args["n_layer"]), n_head=int(args["n_head"]),
        d_model=int(args["n_embd"]), max_seq_len=int(args["block_size"]), pos_emb="learned",
        norm="layernorm", norm_eps=1e-5, norm_bias=bias, mlp="gelu_tanh", qkv_bias=bias, out_bias=bias,
        mlp_bias=bias, tie_embeddings=True, extra={"origin": "crystallm-nanogpt"})


def convert_state_dict(state: dict[str, torch.Tensor], cfg: TransformerConfig) -> dict[str, torch.Tensor]:
    """nanoGPT keys -> argen keys; ``c_attn`` (3C, C) is split into q/k/v_proj (C, C) each."""
    out: dict[str, torch.Tensor] = {}
    c = cfg.d_model
    for key, t in state.items():
        key = key[len(PREFIX):] if key.startswith(PREFIX) else key
        m = re.fullmatch(r"transformer\.h\.(\d+)\.(.+)\.(weight|bias)", key)
        if m and m.group(2) == "attn" and m.group(3) == "bias":
            continue  # the stored causal mask of a non-flash build, not a parameter
        if m:
            layer, name, kind = m.groups()
            base = f"layers.{layer}."
            if name == "attn.c_attn":
                for part, chunk in zip(("q_proj", "k_proj", "v_proj"), t.split(c, dim=0)):
                    out[f"{base}attn.{part}.{kind}"] = chunk.clone()
                continue
            if name not in _LAYER:
                raise ValueError(f"unexpected key {key}")
            out[f"{base}{_LAYER[name]}.{kind}"] = t
            continue
        m = re.fullmatch(r"(transformer\.wte|transformer\.wpe|transformer\.ln_f|lm_head)\.(weight|bias)", key)
        if not m:
            raise ValueError(f"unexpected key {key}")
        out[f"{_TOP[m.group(1)]}.{m.group(2)}"] = t
    head = out.pop("lm_head.weight", None)
    if head is not None and "embed.weight" in out and not torch.equal(head, out["embed.weight"]):
        raise ValueError("lm_head.weight differs from transformer.wte.weight (nanoGPT ties them)")
    return out


def load_crystallm_checkpoint(path: str | Path) -> tuple[Transformer, dict[str, Any]]:
    """A CrystaLLM ckpt.pt -> (Transformer in eval mode on CPU, float32; meta for config.json)."""
    path = Path(path)
    ckpt = load_torch_file(path)  # weights_only=True; refuses pickled code
    if not isinstance(ckpt, dict) or "model_args" not in ckpt or "model" not in ckpt:
        raise _refuse(path, "it has no 'model_args' and 'model' entries")
    args, state = ckpt["model_args"], ckpt["model"]
    if not isinstance(args, dict) or not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _refuse(path, "'model_args' must be a dict and 'model' a dict of tensors")
    try:
        cfg = config_from_model_args(args)
        converted = convert_state_dict({k: v.float() for k, v in state.items()}, cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise _refuse(path, str(e)) from None
    if cfg.vocab_size != 371:
        raise ArgenError(f"{path}: vocab_size {cfg.vocab_size}, CrystaLLM's CIF vocabulary has 371 tokens",
                         hint="only checkpoints trained on CrystaLLM's tokenizer can be sampled here")
    model = build_model(cfg, converted, str(path))
    meta = {"format": "crystallm-nanogpt", "modality": "crystal", "name": path.stem,
            "transformer": cfg.to_dict(), "sampling": {"temperature": 0.8, "top_k": 10}}
    return model, meta


def extract_member(archive: str | Path, member: str, dest: str | Path) -> Path:
    """Copy the one regular file named ``member`` (its base name, e.g. ``ckpt.pt``) out of a tar
    archive (gzip or not) to ``dest``. Nothing is written under a name the archive chooses; an
    archive holding an absolute path, a ``..`` component, a link or a device is refused whole.
    (CrystaLLM's Zenodo models are ``<name>.tar.gz`` holding ``<name>/ckpt.pt``, README.md.)"""
    import shutil
    import tarfile
    from pathlib import PurePosixPath

    archive, dest = Path(archive), Path(dest)
    found = 0
    try:
        with tarfile.open(archive, "r|*") as tar:  # one pass: a stream, no seeking back
            for m in tar:
                p = PurePosixPath(m.name)
                if p.is_absolute() or ".." in p.parts or not (m.isfile() or m.isdir()):
                    raise ArgenError(f"{archive}: refused: member {m.name!r} is a link, a device or a path "
                                     "outside the archive's folder", hint="the archive is not a CrystaLLM release")
                if m.isfile() and p.name == member:
                    found += 1
                    if found == 1:
                        src = tar.extractfile(m)
                        with open(dest, "wb") as out:
                            shutil.copyfileobj(src, out, 1 << 20)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ArgenError(f"{archive} is not a readable tar archive ({e})", hint="delete it and pull again") from None
    if found != 1:
        dest.unlink(missing_ok=True)
        raise ArgenError(f"{archive} holds {found} files named {member}, expected one",
                         hint="the archive is not a CrystaLLM release")
    return dest


def convert_crystallm(source: str | Path, out: str | Path, name: str | None = None, member: str = "ckpt.pt") -> Path:
    """A CrystaLLM ``ckpt.pt``, or a release archive holding one, -> an argen model folder ``out``."""
    import tempfile

    from argen.checkpoints.argen_format import save_model_dir

    source, out = Path(source), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".convert-") as tmp:
        ckpt = source
        if source.name.endswith((".tar", ".tar.gz", ".tgz")):
            ckpt = extract_member(source, member, Path(tmp) / member)
        model, meta = load_crystallm_checkpoint(ckpt)
        meta = {k: v for k, v in meta.items() if k not in ("format", "modality", "transformer")}
        save_model_dir(out, model, "crystal", {**meta, "name": name or source.name.split(".")[0],
                                               "source": source.name})
    return out


def convert_files(sources: list[Path], out: Path, name: str | None = None, **options) -> Path:
    """`argen weights pull` of a CrystaLLM release: its one archive (or ckpt.pt) -> an argen folder."""
    from argen.errors import UsageError

    if len(sources) != 1:
        raise UsageError(f"crystallm conversion takes one file (ckpt.pt or its release archive), got {len(sources)}",
                         hint="e.g. crystallm_v1_small.tar.gz")
    return convert_crystallm(sources[0], out, name=name, **options)
