"""LlamaGen's class-conditional GPTs (GPT-B/L/XL/XXL/3B) as configurations of argen's backbone.

Facts from FoundationVision/LlamaGen ``autoregressive/models/gpt.py``: Llama blocks (RMSNorm eps
1e-5, SwiGLU, no biases, untied output layer); SwiGLU width ``find_multiple(int(2 * 4 * dim / 3),
256)``; a class-embedding table of ``num_classes + 1`` rows (the last is the null class of
classifier-free guidance) giving one conditioning token ahead of the image tokens; 2D RoPE over
the token grid (``precompute_freqs_cis_2d``, base 10000) whose table holds zeros for the class
token; model sizes from ``GPT_B`` ... ``GPT_3B``.

How it maps onto :class:`~argen.engine.transformer.Transformer`:

- the class label ``c`` is the prompt token ``vocab_size + c`` (``cfg.cond_vocab`` rows in
  ``cond_embed``), at position 0; image token ``n`` sits at position ``1 + n``;
- 2D RoPE is ``rope_grid = grid``, ``rope_grid_start = 1``, ``rope_cond = "zero"``;
- the reference rotates interleaved pairs ``(x[2j], x[2j+1])`` (gpt-fast's ``apply_rotary_emb``),
  argen rotates half-split pairs ``(x[j], x[j + hd/2])``; the fused ``wqkv`` is split into q/k/v
  and the rows of q and k are permuted per head so that both compute the same attention.
"""

from __future__ import annotations

import re

import torch

from argen.engine.config import TransformerConfig
from argen.errors import ArgenError

# name: (n_layer, n_head, dim), from gpt.py's GPT_* constructors
GPT_SIZES: dict[str, tuple[int, int, int]] = {
    "gpt-b": (12, 12, 768), "gpt-l": (24, 16, 1024), "gpt-xl": (36, 20, 1280),
    "gpt-xxl": (48, 24, 1536), "gpt-3b": (24, 32, 3200),
}
CODEBOOK_SIZE = 16384
NUM_CLASSES = 1000


def ffn_width(dim: int, multiple_of: int = 256) -> int:
    """LlamaGen's SwiGLU hidden width: 2/3 of 4 * dim, rounded up to a multiple of 256."""
    hidden = int(2 * (4 * dim) / 3)
    return -(-hidden // multiple_of) * multiple_of


def llamagen_config(name: str = "gpt-b", image_size: int = 256, downsample: int = 16,
                    vocab_size: int = CODEBOOK_SIZE, num_classes: int = NUM_CLASSES,
                    size: tuple[int, int, int] | None = None) -> TransformerConfig:
    """The :class:`TransformerConfig` of a class-conditional LlamaGen model, e.g. ``("gpt-b", 256)``
    for ``c2i_B_256.pt`` (16x16 tokens) or ``("gpt-xl", 384)`` for ``c2i_XL_384.pt`` (24x24).
    ``size`` = (n_layer, n_head, dim) describes a model of another size (``name`` is then only a label)."""
    if size is None and name not in GPT_SIZES:
        raise ArgenError(f"unknown LlamaGen model {name!r}", hint=f"choose one of {', '.join(GPT_SIZES)}")
    if image_size % downsample:
        raise ArgenError(f"image size {image_size} is not a multiple of the tokenizer's {downsample}",
                         hint="LlamaGen's released models use 256 or 384")
    n_layer, n_head, dim = size or GPT_SIZES[name]
    grid = image_size // downsample
    return TransformerConfig(
        vocab_size=vocab_size, cond_vocab=num_classes + 1, n_layer=n_layer, n_head=n_head, d_model=dim,
        d_ff=ffn_width(dim), max_seq_len=1 + grid * grid, pos_emb="rope", rope_theta=10000.0,
        rope_grid=grid, rope_grid_start=1, rope_cond="zero", norm="rmsnorm", norm_eps=1e-5, mlp="swiglu",
        extra={"llamagen": {"model": name, "image_size": image_size, "downsample": downsample,
                            "num_classes": num_classes}},
    )


def infer_size(state: dict[str, torch.Tensor]) -> str:
    """The GPT size of an official state dict, from its width and depth (head counts are not in
    the shapes, so the model must be one of :data:`GPT_SIZES`)."""
    dim = state["tok_embeddings.weight"].shape[1]
    n_layer = 1 + max(int(m[1]) for k in state if (m := re.match(r"layers\.(\d+)\.", k)))
    for name, (layers, _, width) in GPT_SIZES.items():
        if (layers, width) == (n_layer, dim):
            return name
    raise ArgenError(f"no LlamaGen model has {n_layer} layers of width {dim}",
                     hint=f"known sizes: {', '.join(GPT_SIZES)}")


def interleaved_to_half(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Rows (n_heads * hd, ...) ordered by interleaved RoPE pairs -> half-split order: within a
    head, row ``2j + s`` moves to ``s * hd/2 + j``."""
    hd = w.shape[0] // n_heads
    return w.reshape(n_heads, hd // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


_TOP = {"tok_embeddings.weight": "embed.weight", "cls_embedding.embedding_table.weight": "cond_embed.weight",
        "norm.weight": "norm.weight", "output.weight": "lm_head.weight"}
_LAYER = {"attention.wo": "attn.o_proj", "feed_forward.w1": "mlp.gate_proj", "feed_forward.w3": "mlp.up_proj",
          "feed_forward.w2": "mlp.down_proj", "attention_norm": "attn_norm", "ffn_norm": "mlp_norm"}
_LAYER_KEY = re.compile(r"layers\.(\d+)\.(.+)\.weight")
# not weights: the RoPE table (older checkpoints kept it as a buffer) and inference KV caches
_IGNORED = re.compile(r"freqs_cis|causal_mask|layers\.\d+\.attention\.kv_cache\.[kv]_cache")


def from_llamagen_state(state: dict[str, torch.Tensor], cfg: TransformerConfig) -> dict[str, torch.Tensor]:
    """An official GPT state dict -> argen's names (q/k rows permuted to half-split RoPE).

    Raises :class:`ArgenError` on a key the reference model does not have; ``build_model``
    then checks that none is missing and every shape fits ``cfg``.
    """
    out: dict[str, torch.Tensor] = {}
    unknown = []
    q_dim, kv_dim = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
    for key, t in state.items():
        m = _LAYER_KEY.fullmatch(key)
        if key in _TOP:
            out[_TOP[key]] = t
        elif _IGNORED.fullmatch(key):
            continue
        elif m and m[2] == "attention.wqkv":
            if t.shape[0] != q_dim + 2 * kv_dim:
                raise ArgenError(f"{key} has {t.shape[0]} rows, the config implies {q_dim + 2 * kv_dim}",
                                 hint="the checkpoint is another model size than the one asked for")
            q, k, v = t.split([q_dim, kv_dim, kv_dim], dim=0)
            out[f"layers.{m[1]}.attn.q_proj.weight"] = interleaved_to_half(q, cfg.n_head).contiguous()
            out[f"layers.{m[1]}.attn.k_proj.weight"] = interleaved_to_half(k, cfg.n_kv_head).contiguous()
            out[f"layers.{m[1]}.attn.v_proj.weight"] = v.contiguous()
        elif m and m[2] in _LAYER:
            out[f"layers.{m[1]}.{_LAYER[m[2]]}.weight"] = t
        else:
            unknown.append(key)
    if unknown:
        raise ArgenError(f"{len(unknown)} unexpected weight(s) in the LlamaGen checkpoint, e.g. {unknown[:3]}",
                         hint="this is not a class-conditional LlamaGen GPT (text-to-image models are not supported)")
    return out
