"""OPT checkpoints (transformers' ``OPTForCausalLM``, as MeshXL saves them) -> argen's Transformer.

Architecture facts from transformers 5 ``models/opt/modeling_opt.py`` and
``configuration_opt.py``: learned positions with 2 unused leading rows
(``OPTLearnedPositionalEmbedding``, offset 2); LayerNorms with weight and bias (eps 1e-5, the
nn.LayerNorm default); q/k/v/out projections and fc1/fc2 with biases (``enable_bias``, default
true); ``activation_function`` (MeshXL: relu); pre-norm blocks when ``do_layer_norm_before``,
post-norm otherwise, and a final norm only with pre-norm (and not ``_remove_final_layer_norm``);
``project_in``/``project_out`` (bias-free) when ``word_embed_proj_dim`` differs from
``hidden_size``; the head tied to the token embedding (``tie_word_embeddings``, default true).

MeshXL (OpenMeshLab/MeshXL ``models/mesh_xl/get_model.py``) rebuilds the model with
``vocab_size=131``, ``max_position_embeddings=8192`` and ``word_embed_proj_dim=hidden_size``,
overriding its released config.json (vocab 50272, 2048 positions). So the vocabulary, embedding
width and context are read here from the weights, never from config.json; heads, layers and
norm placement come from config.json. Its fine-tunes are ``torch.save``'d training checkpoints
(``utils/io.py``: ``{"model": state_dict, "optimizer": ..., "args": Namespace, ...}``) whose
keys carry the wrapper prefix ``transformer.``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import torch

from argen.checkpoints.argen_format import build_model, first_line, read_safetensors
from argen.engine.config import TransformerConfig
from argen.engine.transformer import Transformer
from argen.errors import ArgenError

POS_OFFSET = 2  # OPTLearnedPositionalEmbedding.offset
_ACTS = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
_LAYER = {"self_attn.q_proj": "attn.q_proj", "self_attn.k_proj": "attn.k_proj", "self_attn.v_proj": "attn.v_proj",
          "self_attn.out_proj": "attn.o_proj", "self_attn_layer_norm": "attn_norm", "final_layer_norm": "mlp_norm",
          "fc1": "mlp.up_proj", "fc2": "mlp.down_proj"}
_TOP = {"embed_tokens.weight": "embed.weight", "embed_positions.weight": "pos_embed.weight",
        "final_layer_norm.weight": "norm.weight", "final_layer_norm.bias": "norm.bias",
        "project_in.weight": "project_in.weight", "project_out.weight": "project_out.weight"}
_KEY = re.compile(r"layers\.(\d+)\.(.+)\.(weight|bias)")
_PREFIXES = ("transformer.model.decoder.", "model.decoder.", "decoder.")


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The flat state dict of a safetensors file, a ``pytorch_model.bin`` or a MeshXL training
    checkpoint (``{"model": {...}, ...}``). Opened with ``weights_only=True`` (argparse's
    Namespace, which MeshXL's checkpoints hold, is the one class allowed besides tensors);
    memory-mapped, so the optimizer state they also hold is never read in."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    from argen.checkpoints.argen_format import check_torch_file, unpickler_reason

    check_torch_file(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            try:
                data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:  # files in torch's legacy (pre-zip) format cannot be mapped
                if "mmap" not in str(e):
                    raise
                data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling errors come in many types
        raise ArgenError(f"refused to load {path} ({unpickler_reason(e) or first_line(e)})",
                         hint="it is not a plain PyTorch checkpoint of tensors; convert it to safetensors") from None
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArgenError(f"{path} holds no state dict of tensors", hint="expected an OPT / MeshXL checkpoint")
    return state


def strip(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, list[str]]:
    """Decoder tensors without their prefix, the head (or None) and the keys that belong to
    neither (e.g. x-mesh-xl's text encoder)."""
    dec, head, other = {}, None, []
    for key, t in state.items():
        if key in ("lm_head.weight", "transformer.lm_head.weight"):
            head = t
            continue
        for p in _PREFIXES:
            if key.startswith(p):
                dec[key[len(p):]] = t
                break
        else:
            other.append(key)
    return dec, head, other


def opt_config(hf: dict[str, Any], dec: dict[str, torch.Tensor], source: str) -> TransformerConfig:
    """A TransformerConfig for an OPT decoder: sizes from the tensors, the rest from config.json."""
    if "embed_tokens.weight" not in dec or "embed_positions.weight" not in dec:
        raise ArgenError(f"{source}: no OPT decoder embeddings in the weights", hint="this is not an OPT/MeshXL checkpoint")
    act = hf.get("activation_function", "relu")
    if act not in _ACTS:
        raise ArgenError(f"OPT activation_function {act!r} is not supported", hint=f"supported: {', '.join(_ACTS)}")
    if hf.get("layer_norm_elementwise_affine", True) is False:
        raise ArgenError("OPT without LayerNorm weights is not supported", hint="layer_norm_elementwise_affine must be true")
    vocab, width = dec["embed_tokens.weight"].shape
    d_model = dec["embed_positions.weight"].shape[1]
    n_layer = 1 + max((int(m[1]) for m in map(_KEY.fullmatch, dec) if m), default=-1)
    if n_layer == 0:
        raise ArgenError(f"{source}: the weights hold no decoder layers", hint="the checkpoint is incomplete")
    n_head = int(hf.get("num_attention_heads") or 0)
    if n_head <= 0 or d_model % n_head:
        raise ArgenError(f"{source}: num_attention_heads {n_head} does not divide the width {d_model}",
                         hint="the config.json belongs to another model size")
    pre = bool(hf.get("do_layer_norm_before", True))
    bias = bool(hf.get("enable_bias", True))
    return TransformerConfig(
        vocab_size=int(vocab), n_layer=n_layer, n_head=n_head, d_model=int(d_model),
        d_ff=int(dec["layers.0.fc1.weight"].shape[0]), max_seq_len=int(dec["embed_positions.weight"].shape[0]) - POS_OFFSET,
        pos_emb="learned", pos_offset=POS_OFFSET, norm="layernorm", norm_eps=1e-5, norm_bias=True, mlp=_ACTS[act],
        qkv_bias=bias, out_bias=bias, mlp_bias=bias, post_norm=not pre,
        final_norm="final_layer_norm.weight" in dec, embed_dim=int(width) if width != d_model else None,
        tie_embeddings=bool(hf.get("tie_word_embeddings", True)), extra={"hf_model_type": "opt", "source": source})


def opt_state(dec: dict[str, torch.Tensor], head: torch.Tensor | None, cfg: TransformerConfig,
              source: str) -> dict[str, torch.Tensor]:
    """Rename decoder tensors into argen's names; a head that differs from a tied embedding is
    an error (a tied model has one matrix)."""
    out, unknown = {}, []
    for key, t in dec.items():
        m = _KEY.fullmatch(key)
        if key in _TOP:
            out[_TOP[key]] = t
        elif m and m[2] in _LAYER:
            out[f"layers.{m[1]}.{_LAYER[m[2]]}.{m[3]}"] = t
        else:
            unknown.append(key)
    if unknown:
        raise ArgenError(f"{source}: {len(unknown)} unexpected OPT weight(s), e.g. {unknown[:3]}",
                         hint="the checkpoint has parts argen does not implement")
    if head is not None:
        if cfg.tie_embeddings and not torch.equal(head, out["embed.weight"]):
            raise ArgenError(f"{source}: lm_head differs from the tied token embedding",
                             hint="set tie_word_embeddings false in config.json if the head is separate")
        out["lm_head.weight"] = head
    elif not cfg.tie_embeddings:
        raise ArgenError(f"{source}: no lm_head.weight and the head is not tied", hint="the checkpoint is incomplete")
    return out


def load_opt(hf: dict[str, Any], state: dict[str, torch.Tensor], source: str, allow_extra: bool = False,
             cond_vocab: int = 0) -> tuple[Transformer, list[str]]:
    """An OPT state dict (any of MeshXL's key layouts) as an argen Transformer (CPU, float32,
    eval) and the keys outside the decoder (an error unless ``allow_extra``). ``cond_vocab``
    adds that many conditioning ids after the vocabulary, their embeddings zero (x-mesh-xl
    writes its prefix vectors there before sampling)."""
    dec, head, other = strip(state)
    if other and not allow_extra:
        raise ArgenError(f"{source}: {len(other)} weight(s) outside the OPT decoder, e.g. {other[:3]}",
                         hint="this checkpoint carries another model part (x-mesh-xl's text encoder?)")
    cfg = opt_config(hf, dec, source)
    state = opt_state(dec, head, cfg, source)
    if cond_vocab:
        if cfg.embed_dim is not None:
            raise ArgenError(f"{source}: prefix vectors with project_in are not supported", hint="x-mesh-xl has none")
        cfg.cond_vocab = cond_vocab
        state["cond_embed.weight"] = torch.zeros(cond_vocab, cfg.d_model)
    return build_model(cfg, {k: v.float() for k, v in state.items()}, source), other
