"""The decoder-only backbone every modality shares.

Llama-style by default (RoPE, RMSNorm, SwiGLU, grouped-query attention); GPT-2-style blocks
(learned positions, LayerNorm, GELU, biases) by config; encoder-decoder blocks (sinusoidal
positions, cross-attention to encoder states whose keys/values are computed once: MusicGen).
Attention goes through ``scaled_dot_product_attention``; masks are derived from token
positions, which makes causal, block-causal (bidirectional inside a block), prefix-conditioned,
left-padded and cached attention one mechanism.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from argen.engine.config import TransformerConfig
from argen.engine.cross_attention import CrossAttention, Memory
from argen.engine.flex_masks import cached_block_mask, flex_attend, flex_usable
from argen.engine.kv_cache import KVCache
from argen.engine.rope import apply_rope, rope_cos_sin, rope_grid_cos_sin, rope_inv_freq, rope_video_cos_sin, rope_video_freqs


def rope_freqs(cfg: TransformerConfig) -> torch.Tensor | None:
    """The model's RoPE inverse frequencies: (head_dim // 2,), or (head_dim // 4,) per grid axis
    with 2D RoPE; (3 * head_dim // 8,) with 3D RoPE; None without RoPE."""
    if cfg.pos_emb != "rope":
        return None
    if cfg.rope_frame:
        return rope_video_freqs(cfg.head_dim, cfg.rope_theta)
    return rope_inv_freq(cfg.head_dim // 2 if cfg.rope_grid else cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)


def expand_runs(v: torch.Tensor, runs: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """Vectors (B, U, C) -> one per token (B, T, C): ``runs`` ((n, k), ...) say that the next n
    vectors are each held by k consecutive tokens (an expand, whose backward is a sum)."""
    out, i = [], 0
    for n, k in runs:
        out.append(v[:, i:i + n, None].expand(-1, -1, k, -1).flatten(1, 2))
        i += n
    return torch.cat(out, dim=1) if len(out) > 1 else out[0]


def sinusoidal_positions(pos: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """Fixed position vectors (B, T, dim) for positions (B, T): the cosines of ``pos * f_i`` then
    the sines, ``f_i = exp(-i * ln(10000) / (dim / 2 - 1))`` (tensor2tensor's layout, as
    transformers' ``MusicgenSinusoidalPositionalEmbedding.get_embedding`` builds its table; the
    same float32 products, so the vectors are equal to that table's rows)."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, device=pos.device, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    ang = pos.to(torch.float32)[..., None] * freq  # (B, T, dim / 2)
    out = torch.cat([ang.cos(), ang.sin()], dim=-1)
    if dim % 2:
        out = F.pad(out, (0, 1))
    return out.to(dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one fused kernel (it accumulates in float32 for half-precision inputs)
        return F.rms_norm(x, self.weight.shape, self.weight.to(x.dtype), self.eps)


def make_norm(cfg: TransformerConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.d_model, cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=cfg.norm_bias)


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_head * cfg.head_dim, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(cfg.d_model, cfg.n_kv_head * cfg.head_dim, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(cfg.d_model, cfg.n_kv_head * cfg.head_dim, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(cfg.n_head * cfg.head_dim, cfg.d_model, bias=cfg.out_bias)
        self.dropout = cfg.dropout
        if cfg.qk_norm:  # norms over the concatenated heads, so they act before the split into heads
            self.q_norm = RMSNorm(cfg.n_head * cfg.head_dim, cfg.norm_eps)
            self.k_norm = RMSNorm(cfg.n_kv_head * cfg.head_dim, cfg.norm_eps)
        self.qk_norm = cfg.qk_norm

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None,
                mask: torch.Tensor | str, cache: KVCache | None, slots: slice | None) -> torch.Tensor:
        b, t, _ = x.shape
        q, k = self.q_proj(x), self.k_proj(x)  # (B, T, H * hd), (B, T, Hkv * hd)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.view(b, t, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = k.view(b, t, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, Hkv, T, hd)
        v = self.v_proj(x).view(b, t, self.n_kv_head, self.head_dim).transpose(1, 2)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.write(self.layer, slots, k, v)  # (B, Hkv, S, hd)
        if not isinstance(mask, (str, torch.Tensor)):  # a FlexAttention BlockMask (CUDA, block layouts)
            y = flex_attend(q, k, v, mask, self.n_kv_head != self.n_head)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=None if isinstance(mask, str) else mask, is_causal=mask == "causal",
                dropout_p=self.dropout if self.training else 0.0,
                enable_gqa=self.n_kv_head != self.n_head,
            )  # (B, H, T, hd)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.n_head * self.head_dim))


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.kind = cfg.mlp
        self.up_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.mlp_bias)
        if self.kind == "swiglu":
            self.gate_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "swiglu":
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        if self.kind == "relu":
            return self.down_proj(F.relu(self.up_proj(x)))
        if self.kind == "quick_gelu":  # CLIP's x * sigmoid(1.702 x)
            h = self.up_proj(x)
            return self.down_proj(h * torch.sigmoid(1.702 * h))
        approx = "tanh" if self.kind == "gelu_tanh" else "none"
        return self.down_proj(F.gelu(self.up_proj(x), approximate=approx))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig, layer: int) -> None:
        super().__init__()
        self.attn_norm = make_norm(cfg)
        self.attn = Attention(cfg, layer)
        self.mlp_norm = make_norm(cfg)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.ada = nn.Linear(cfg.adaln_dim or cfg.d_model, 6 * cfg.d_model) if cfg.adaln else None
        self.post_norm = cfg.post_norm
        if cfg.cross_attn:
            self.cross_norm = make_norm(cfg)
            self.cross = CrossAttention(cfg.d_model, cfg.n_head, cfg.head_dim, cfg.qkv_bias, cfg.out_bias)
        else:
            self.cross = None

    def forward(self, x, rope, mask, cache, slots, mod=None, memory: Memory | None = None):
        if self.post_norm:  # OPT-350m style: normalise the residual stream after each add
            x = self.attn_norm(x + self.drop(self.attn(x, rope, mask, cache, slots)))
            return self.mlp_norm(x + self.drop(self.mlp(x)))
        if mod is None:
            x = x + self.drop(self.attn(self.attn_norm(x), rope, mask, cache, slots))
            if self.cross is not None:
                layer = self.attn.layer
                x = x + self.drop(self.cross(self.cross_norm(x), memory.k[layer], memory.v[layer], memory.mask))
            return x + self.drop(self.mlp(self.mlp_norm(x)))
        cond, runs = mod  # (B, U, C) distinct vectors, and the tokens holding each (see expand_runs)
        shift1, scale1, gate1, shift2, scale2, gate2 = expand_runs(self.ada(cond), runs).chunk(6, dim=-1)
        h = self.attn_norm(x) * (1 + scale1) + shift1
        x = x + gate1 * self.drop(self.attn(h, rope, mask, cache, slots))
        h = self.mlp_norm(x) * (1 + scale2) + shift2
        return x + gate2 * self.drop(self.mlp(h))


class Transformer(nn.Module):
    """Decoder-only transformer returning next-token logits.

    Call with token ids ``idx`` (B, T) and, optionally, positions ``pos`` (B, T) (-1 marks left
    padding), a :class:`KVCache` to read and extend, and ``prefix`` conditioning vectors
    (B, P, cond_dim or d_model) placed before the tokens. With ``cfg.cond_vocab``, ids from
    ``vocab_size`` on are conditioning tokens (e.g. class labels) embedded by ``cond_embed``.
    Returns logits (B, N, vocab) for the last ``num_logits`` positions (all when None).
    With ``cfg.feature_dim``, ``idx`` may be float features or an (ids, features) pair (see
    :meth:`embed_inputs`). Continuous models (video latents) pass ``embeds`` (B, T, C) instead of ids and read the
    final hidden states with ``head=False``.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        width = cfg.embed_dim or cfg.d_model  # OPT-350m embeds tokens narrower than d_model
        self.embed = nn.Embedding(cfg.vocab_size, width)
        self.cond_embed = nn.Embedding(cfg.cond_vocab, cfg.d_model) if cfg.cond_vocab else None
        self.pos_embed = (nn.Embedding(cfg.max_seq_len + cfg.pos_offset, cfg.d_model)
                          if cfg.pos_emb == "learned" else None)
        self.cond_proj = nn.Linear(cfg.cond_dim, cfg.d_model) if cfg.cond_dim else None
        self.feature_in = nn.Linear(cfg.feature_dim, cfg.d_model) if cfg.feature_dim else None
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.norm = make_norm(cfg) if cfg.final_norm else nn.Identity()
        self.lm_head = nn.Linear(width, cfg.vocab_size, bias=False)
        self.project_in = nn.Linear(width, cfg.d_model, bias=False) if width != cfg.d_model else None
        self.project_out = nn.Linear(cfg.d_model, width, bias=False) if width != cfg.d_model else None
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.register_buffer("inv_freq", rope_freqs(cfg), persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                # residual branches start small so the stream's variance stays ~1 with depth
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))
            elif ".ada." in name:
                nn.init.zeros_(p)  # adaLN-Zero: every block starts as the identity

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch: int, capacity: int | None = None, dtype: torch.dtype | None = None) -> KVCache:
        """A cache for ``batch`` sequences of up to ``capacity`` positions (default: the context)."""
        c = self.cfg
        w = self.embed.weight
        return KVCache(c.n_layer, batch, c.n_kv_head, capacity or c.max_seq_len, c.head_dim,
                       device=w.device, dtype=dtype or w.dtype)

    def memory(self, states: torch.Tensor, mask: torch.Tensor | None = None) -> Memory:
        """Cross-attention keys and values of encoder ``states`` (B, S, d_model) for every layer,
        computed once and read by every later forward pass (``memory=``); ``mask`` (B, S) bool
        marks the positions that may be read (None: all)."""
        if not self.cfg.cross_attn:
            raise ValueError("this model has no cross-attention (cfg.cross_attn is False)")
        states = states.to(self.embed.weight.dtype)  # the compute dtype (projections may be quantised)
        kv = [block.cross.keys_values(states) for block in self.layers]
        return Memory([k for k, _ in kv], [v for _, v in kv], None if mask is None else mask.bool()[:, None, None, :])

    def embed_ids(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> embeddings (B, T, C); ids from ``vocab_size`` on use ``cond_embed``.

        With ``n_streams`` > 1, ids are (B, T, n_streams): stream k's id i embeds as row
        k * vocab_size / n_streams + i, and the streams' embeddings are summed (MusicGen's
        codebook embeddings). A conditioning id in stream 0 stands for the whole position.
        """
        v = self.cfg.vocab_size
        if idx.dim() == 3:
            k = idx.shape[-1]
            per = v // k
            offsets = torch.arange(k, device=idx.device) * per
            h = self.embed(idx.clamp(min=0, max=per - 1) + offsets).sum(2)  # (B, T, C)
            idx = idx[..., 0]
            if self.cond_embed is None:
                return h
        elif self.cond_embed is None:
            return self._embed_tokens(idx)
        else:
            h = self._embed_tokens(idx.clamp(max=v - 1))
        is_cond = (idx >= v)[..., None]  # (B, T, 1)
        return torch.where(is_cond, self.cond_embed((idx - v).clamp(min=0)), h)

    def _embed_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.embed(idx)
        return h if self.project_in is None else self.project_in(h)

    def embed_inputs(self, inputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Ids (B, T) as :meth:`embed_ids`; features (B, T, feature_dim) through ``feature_in``; or
        ids then features as a pair ((B, P), (B, T, feature_dim)) -> (B, P + T, C)."""
        if isinstance(inputs, tuple):
            ids, feats = inputs
            return torch.cat([self.embed_ids(ids), self.embed_inputs(feats)], dim=1)
        if inputs.is_floating_point():
            if self.feature_in is None:
                raise ValueError("this model takes token ids, not feature vectors (feature_dim is 0)")
            return self.feature_in(inputs.to(self.feature_in.weight.dtype))
        return self.embed_ids(inputs)

    def rope(self, pos: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
        """cos, sin (B, 1, T, head_dim) for positions (B, T): 1D, 2D over ``cfg.rope_grid`` or
        3D over frames of ``cfg.rope_frame`` tokens."""
        c = self.cfg
        if self.inv_freq is None:
            return None
        if c.rope_frame:
            return rope_video_cos_sin(pos, self.inv_freq, c.rope_frame, c.rope_grid, c.rope_grid_start, dtype)
        if c.rope_grid:
            return rope_grid_cos_sin(pos, self.inv_freq, c.rope_grid, c.rope_grid_start, c.rope_cond, dtype)
        return rope_cos_sin(pos, self.inv_freq, dtype)

    def block_ids(self, pos: torch.Tensor) -> torch.Tensor:
        """Attention block of each position: prefix tokens form block 0, then blocks of
        ``block_size`` tokens, or of ``block_sizes`` (the last size repeating)."""
        c = self.cfg
        rel = pos - c.prefix_len
        if c.block_sizes is None:
            ids = torch.div(rel, c.block_size, rounding_mode="floor") + 1
        else:
            sizes = torch.tensor(c.block_sizes, device=pos.device)
            ends = sizes.cumsum(0)  # exclusive end of each listed block
            listed = torch.bucketize(rel, ends, right=True) + 1
            beyond = len(c.block_sizes) + 1 + torch.div(rel - ends[-1], sizes[-1], rounding_mode="floor")
            ids = torch.where(rel < ends[-1], listed, beyond)
        return torch.where(pos < c.prefix_len, torch.zeros_like(ids), ids)

    def attention_mask(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        """Boolean mask (B, 1, T, S): query t may read key s. Padded slots (-1) are unreadable,
        except by padded queries, so that no row of the softmax is empty."""
        allowed = self.block_ids(k_pos)[:, None, :] <= self.block_ids(q_pos)[:, :, None]
        allowed &= (k_pos >= 0)[:, None, :]
        allowed |= ((q_pos < 0)[:, :, None] & (k_pos < 0)[:, None, :])
        return allowed[:, None]

    def forward(self, idx: torch.Tensor | None, pos: torch.Tensor | None = None, cache: KVCache | None = None,
                prefix: torch.Tensor | None = None, num_logits: int | None = None,
                embeds: torch.Tensor | None = None, head: bool = True,
                attn_mask: torch.Tensor | None = None,
                mod: tuple[torch.Tensor, tuple[tuple[int, int], ...]] | None = None,
                memory: Memory | None = None) -> torch.Tensor:
        """``attn_mask`` (B, 1, T, T) bool, without a cache, replaces the mask derived from positions
        (a layout the positions cannot express, e.g. a clean copy of a noisy sequence). ``mod``, for
        ``cfg.adaln``: conditioning vectors (B, U, C) and the runs of tokens (prefix included)
        that hold them, as :func:`expand_runs` reads them. ``memory``, for ``cfg.cross_attn``: the
        encoder states' keys and values from :meth:`memory`, one row per sequence."""
        if (mod is not None) != self.cfg.adaln:
            raise ValueError("adaLN models need mod (conditioning vectors), others take none")
        if (memory is not None) != self.cfg.cross_attn:
            raise ValueError("cross-attention models need memory (encoder keys/values), others take none")
        c = self.cfg
        h = self.embed_inputs(idx) if embeds is None else embeds  # (B, T, C): ids and/or features, or vectors (latents)
        if prefix is not None:
            p = self.cond_proj(prefix) if self.cond_proj is not None else prefix
            h = torch.cat([p.to(h.dtype), h], dim=1)  # (B, P + T, C)
        b, t, _ = h.shape
        dense = pos is None  # positions 0..T-1 (after the cache), no padding
        if pos is None:
            start = cache.length if cache is not None else 0
            pos = torch.arange(start, start + t, device=h.device).expand(b, t)
        if self.pos_embed is not None:
            rows = pos.clamp(min=0)
            h = h + self.pos_embed(rows + c.pos_offset if c.pos_offset else rows)
        elif c.pos_emb == "sinusoidal":
            h = h + sinusoidal_positions(pos.clamp(min=0), c.d_model, h.dtype)
        h = self.drop(h)
        rope = self.rope(pos, h.dtype)
        slots = None
        if attn_mask is not None:
            if cache is not None:
                raise ValueError("attn_mask is for uncached passes")
            mask = attn_mask
        elif cache is not None:
            slots = cache.reserve(pos)
            if t == 1 and c.causal and not cache.static and not cache.padded:
                mask = "none"  # one new token after unpadded keys may read them all
            else:
                mask = self.attention_mask(pos, cache.key_pos())
        elif dense and c.causal:
            mask = "causal"  # a dense batch: let SDPA pick its causal kernel
        elif flex_usable(self, h):  # block-sparse: empty tiles skipped (argen/engine/flex_masks.py)
            mask = cached_block_mask(self, pos, pos)
        else:
            mask = self.attention_mask(pos, pos)
        for block in self.layers:
            h = block(h, rope, mask, cache, slots, mod, memory)
        if num_logits is not None:
            h = h[:, -num_logits:]
        h = self.norm(h)
        if self.project_out is not None:
            h = self.project_out(h)
        return self.lm_head(h) if head else h  # head=False: final hidden states (B, N, C) for a model's own head
