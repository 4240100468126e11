"""The backbone's configuration: one dataclass, saved as config.json beside the weights."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal


class DictConfig:
    """For config dataclasses saved as config.json: ``to_dict`` and a ``from_dict`` that refuses
    unknown keys (a config from another version or tool fails loudly, not silently)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """The config from a dict; unknown keys and values of the wrong type (``n_layer: 2.5``,
        ``pos_emb: "bogus"``) are a ValueError naming the key."""
        if not isinstance(d, dict):
            raise ValueError(f"a {cls.__name__} is a JSON object, not {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
        hints = typing.get_type_hints(cls)
        for key, value in d.items():
            if not _fits(value, hints[key]):
                raise ValueError(f"{key}: {value!r} is not {_describe(hints[key])}")
        return cls(**d)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a config field's annotation (bool is not an int here)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value) if args else isinstance(value, list)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    return {int: "an integer", float: "a finite number", bool: "true or false", str: "a string",
            type(None): "null"}.get(hint, "a " + getattr(origin or hint, "__name__", str(hint)))


@dataclass
class TransformerConfig(DictConfig):
    """Everything needed to rebuild a :class:`~argen.engine.transformer.Transformer`.

    The defaults describe a small Llama-style model (RoPE, RMSNorm, SwiGLU, GQA). GPT-2-style
    models set ``pos_emb="learned"``, ``norm="layernorm"``, ``mlp="gelu"`` and the bias flags.
    """

    vocab_size: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int | None = None  # None: same as n_head (no grouping)
    d_model: int = 256
    head_dim: int | None = None  # None: d_model // n_head
    d_ff: int | None = None  # None: derived from d_model and the MLP kind
    max_seq_len: int = 1024
    # rope; learned (a trained table); sinusoidal (fixed sin/cos of the position, no weights: the
    # tensor2tensor layout MusicGen uses, see transformer.sinusoidal_positions)
    pos_emb: Literal["rope", "learned", "sinusoidal"] = "rope"
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None  # e.g. {"rope_type": "llama3", "factor": 8, ...}
    # 2D RoPE over a row-major token grid this many tokens wide (LlamaGen); None: 1D RoPE.
    # Positions below rope_grid_start are conditioning tokens outside the grid; rope_cond says
    # what RoPE does to their queries/keys: "identity" (unrotated) or "zero" (LlamaGen's c2i).
    rope_grid: int | None = None
    rope_grid_start: int = 0
    rope_cond: Literal["identity", "zero"] = "identity"
    # 3D RoPE over (time, row, column) for video: tokens per frame, with rope_grid its width and
    # rope_grid_start the first frame token (see rope.rope_video_cos_sin); None: off.
    rope_frame: int | None = None
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    norm_eps: float = 1e-5
    mlp: Literal["swiglu", "gelu", "gelu_tanh", "relu", "quick_gelu"] = "swiglu"
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    norm_bias: bool = False  # LayerNorm bias
    tie_embeddings: bool = False
    # ids vocab_size .. vocab_size + cond_vocab - 1 embed from a second table (e.g. class labels);
    # the head never predicts them
    cond_vocab: int = 0
    # parallel token streams (audio codebooks): the vocabulary splits into n_streams equal
    # ranges; inputs (B, T, n_streams) sum one embedding per stream, and the head's logits
    # (..., vocab_size) read as (..., n_streams, vocab_size / n_streams)
    n_streams: int = 1
    prefix_len: int = 0  # conditioning tokens prepended to every sequence (bidirectional)
    cond_dim: int | None = None  # width of prefix vectors, projected to d_model; None: no projection
    # float inputs (B, T, feature_dim) projected to d_model by feature_in (VAR's running feature map
    # as a next-scale model's scale inputs); 0: ids only
    feature_dim: int = 0
    block_size: int = 1  # 1: causal; >1: bidirectional inside blocks, causal across them
    block_sizes: list[int] | None = None  # uneven blocks (e.g. VAR scales 1, 4, 16, 64); repeats the last
    dropout: float = 0.0
    # adaLN-Zero (DiT): every block scales and shifts its two norms and gates its two branches by
    # a linear map of a per-token conditioning vector (a diffusion model's noise time), the map
    # zero at initialisation; the caller passes the vectors (see Transformer.forward's ``mod``)
    adaln: bool = False
    adaln_dim: int | None = None  # width of those conditioning vectors; None: d_model (BD3-LM's DiT: cond_dim)
    # encoder-decoder: every block also attends to encoder states (d_model wide) through a
    # pre-norm cross-attention between its self-attention and its MLP; the caller passes the
    # states' keys and values, computed once (Transformer.memory)
    cross_attn: bool = False
    # OPT-style options, all off by default. Learned positions read row p + pos_offset of a table
    # of max_seq_len + pos_offset rows (OPT keeps 2 unused rows first); post_norm puts each
    # block's norms after its residual adds (OPT with do_layer_norm_before false); final_norm
    # false drops the norm after the last block; embed_dim, when it differs from d_model, is the
    # token embedding's width, mapped in and out by bias-free project_in / project_out.
    pos_offset: int = 0
    post_norm: bool = False
    final_norm: bool = True
    embed_dim: int | None = None
    # RMSNorm over all heads' queries and over all heads' keys (one norm each, d = n_head * head_dim),
    # after their projections and before RoPE (Wan's "rms_norm_across_heads"); off: none
    qk_norm: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (tokenizer, origin)

    def __post_init__(self) -> None:
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.head_dim is None:
            self.head_dim = self.d_model // self.n_head
        if self.d_ff is None:
            if self.mlp == "swiglu":
                # 2/3 of 4x keeps the parameter count of a 4x GELU MLP; round up to 32
                hidden = int(8 * self.d_model / 3)
                self.d_ff = 32 * ((hidden + 31) // 32)
            else:
                self.d_ff = 4 * self.d_model
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        if self.n_streams < 1 or self.vocab_size % self.n_streams:
            raise ValueError(f"vocab_size ({self.vocab_size}) must split into n_streams ({self.n_streams}) equal ranges")
        if self.adaln and self.cross_attn:
            raise ValueError("adaLN blocks have no cross-attention")
        if self.block_size < 1:
            raise ValueError("block_size must be at least 1")
        if self.block_sizes is not None and (not self.block_sizes or min(self.block_sizes) < 1):
            raise ValueError("block_sizes must be a non-empty list of positive sizes")
        if self.rope_grid is not None and (self.rope_grid < 1 or self.head_dim % 4):
            raise ValueError("2D RoPE needs rope_grid >= 1 and head_dim divisible by 4")
        if self.pos_offset < 0:
            raise ValueError("pos_offset must be 0 or more")
        if self.embed_dim is not None and self.embed_dim != self.d_model and self.n_streams > 1:
            raise ValueError("embed_dim (project_in/out) is not supported with parallel streams")
        if self.post_norm and self.adaln:
            raise ValueError("post_norm blocks have no adaLN form")
        if self.post_norm and self.cross_attn:
            raise ValueError("post_norm blocks have no cross-attention")
        if self.rope_frame is not None and (self.rope_grid is None or self.rope_frame % self.rope_grid
                                            or self.head_dim % 8):
            raise ValueError("3D RoPE needs rope_grid, rope_frame a multiple of it and head_dim divisible by 8")

    @property
    def causal(self) -> bool:
        """Plain token-by-token causality (no prefix, no blocks)."""
        return self.block_size == 1 and self.block_sizes is None and self.prefix_len == 0

    def num_params(self) -> int:
        """Parameter count computed from the config alone (no model built)."""
        c = self
        attn = c.d_model * c.head_dim * (c.n_head * 2 + c.n_kv_head * 2)
        attn += (c.head_dim * (c.n_head + 2 * c.n_kv_head) if c.qkv_bias else 0) + (c.d_model if c.out_bias else 0)
        attn += c.head_dim * (c.n_head + c.n_kv_head) if c.qk_norm else 0
        n_mats = 3 if c.mlp == "swiglu" else 2
        mlp = n_mats * c.d_model * c.d_ff + ((n_mats - 1) * c.d_ff + c.d_model if c.mlp_bias else 0)
        norm = c.d_model * (2 if c.norm_bias else 1)
        per_layer = attn + mlp + 2 * norm
        if c.cross_attn:  # q, k, v, o as in self-attention (all heads for k, v), and its norm
            per_layer += c.d_model * c.head_dim * c.n_head * 4 + norm
            per_layer += (3 * c.head_dim * c.n_head if c.qkv_bias else 0) + (c.d_model if c.out_bias else 0)
        width = c.embed_dim or c.d_model  # the token embedding's (and the head's) width
        total = c.n_layer * per_layer + (norm if c.final_norm else 0) + c.vocab_size * width + c.cond_vocab * c.d_model
        if width != c.d_model:
            total += 2 * width * c.d_model  # project_in, project_out
        if not c.tie_embeddings:
            total += c.vocab_size * width
        if c.pos_emb == "learned":
            total += (c.max_seq_len + c.pos_offset) * c.d_model
        if c.cond_dim:
            total += c.cond_dim * c.d_model + c.d_model
        if c.feature_dim:
            total += c.feature_dim * c.d_model + c.d_model
        return total
