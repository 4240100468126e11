"""VAR's class-conditional next-scale transformer (Tian et al. 2024, "Visual Autoregressive
Modeling"), with the key names of the released ``var_d16.pth`` ... ``var_d30.pth``.

Facts (module tree, key names, shapes, initial values, formulas) are from FoundationVision/VAR:
``models/var.py`` (VAR: embeddings, level embedding, masks, head), ``models/basic_var.py``
(SelfAttention, FFN, AdaLNSelfAttn, AdaLNBeforeHead) and ``models/__init__.py``
(``build_vae_var``: width = 64 * depth, heads = depth, LayerNorm eps 1e-6, l2-normalised attention).

The sequence is the scales' tokens in order (L = sum s_k^2). The first scale's input is the class
embedding plus ``pos_start``; scale k+1's input is the VAE's f_hat after scale k, area-downsampled
to s_{k+1} and mapped by ``word_embed``. Each position also gets an absolute position embedding
and its scale's level embedding. Every block is modulated by the class embedding (adaptive
LayerNorm); a token reads its own scale and every coarser one (block-causal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from argen.engine.config import DictConfig
from argen.engine.kv_cache import KVCache
from argen.modalities.image.var.vqvae import RELEASED_PATCH_NUMS

RELEASED_DEPTHS = (16, 20, 24, 30)


@dataclass
class VARConfig(DictConfig):
    """Rebuilds a :class:`VAR`; ``width`` and ``num_heads`` derive from ``depth`` when None."""

    depth: int = 16
    width: int | None = None  # None: 64 * depth
    num_heads: int | None = None  # None: depth (head_dim 64)
    mlp_ratio: float = 4.0
    num_classes: int = 1000
    vocab_size: int = 4096  # the VAE's codebook
    vae_channels: int = 32  # the VAE's Cvae (word_embed's input width)
    patch_nums: list[int] = field(default_factory=lambda: list(RELEASED_PATCH_NUMS))
    norm_eps: float = 1e-6
    shared_aln: bool = False  # True: one ada_lin for all blocks, plus a learned per-block ada_gss
    attn_l2_norm: bool = True  # cosine attention with a learned per-head temperature

    def __post_init__(self) -> None:
        self.patch_nums = list(self.patch_nums)
        if self.width is None:
            self.width = 64 * self.depth
        if self.num_heads is None:
            self.num_heads = self.depth
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not a multiple of num_heads {self.num_heads}")

    @property
    def seq_len(self) -> int:
        return sum(s * s for s in self.patch_nums)

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads



def var_config(depth: int) -> VARConfig:
    """The released ImageNet 256x256 model of this depth (16, 20, 24 or 30)."""
    if depth not in RELEASED_DEPTHS:
        raise ValueError(f"no released VAR of depth {depth}; choose one of {RELEASED_DEPTHS}")
    return VARConfig(depth=depth)


class VARCache(KVCache):
    """A KV cache that also holds the rows' class embeddings ``cond`` (R, D), which every later
    scale needs for its adaptive LayerNorms."""

    cond: torch.Tensor | None = None


class SelfAttention(nn.Module):
    def __init__(self, cfg: VARConfig) -> None:
        super().__init__()
        c, self.n_head, self.head_dim = cfg.width, cfg.num_heads, cfg.head_dim
        self.l2_norm = cfg.attn_l2_norm
        if self.l2_norm:
            self.scale = 1.0
            self.scale_mul_1H11 = nn.Parameter(torch.full((1, self.n_head, 1, 1), 4.0).log())
            self.max_scale_mul = torch.tensor(100.0, device="cpu").log().item()  # temperature <= 100 (float32 log)
        else:
            self.scale = 0.25 / self.head_dim**0.5
        self.mat_qkv = nn.Linear(c, 3 * c, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(c))
        self.v_bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("zero_k_bias", torch.zeros(c))  # keys get no bias
        self.proj = nn.Linear(c, c)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: VARCache | None,
                layer: int, slots: slice | None) -> torch.Tensor:
        b, t, c = x.shape
        bias = torch.cat([self.q_bias, self.zero_k_bias, self.v_bias])
        qkv = F.linear(x, self.mat_qkv.weight, bias).view(b, t, 3, self.n_head, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, hd) each
        if self.l2_norm:
            q = F.normalize(q, dim=-1) * self.scale_mul_1H11.clamp_max(self.max_scale_mul).exp()
            k = F.normalize(k, dim=-1)
        if cache is not None:
            k, v = cache.write(layer, slots, k, v)  # (B, H, S, hd): this scale and the coarser ones
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)  # (B, H, T, hd)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class FFN(nn.Module):
    def __init__(self, cfg: VARConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.width, round(cfg.width * cfg.mlp_ratio))
        self.fc2 = nn.Linear(round(cfg.width * cfg.mlp_ratio), cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class AdaLNSelfAttn(nn.Module):
    """A pre-norm block whose LayerNorms take scale/shift, and whose branches a gate, from the
    condition: six (R, 1, C) vectors from ``ada_lin`` (or the shared ones plus ``ada_gss``)."""

    def __init__(self, cfg: VARConfig, layer: int) -> None:
        super().__init__()
        self.layer, c = layer, cfg.width
        self.attn = SelfAttention(cfg)
        self.ffn = FFN(cfg)
        self.ln_wo_grad = nn.LayerNorm(c, eps=cfg.norm_eps, elementwise_affine=False)
        if cfg.shared_aln:
            self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, c) / c**0.5)
        else:
            self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(cfg.width, 6 * c))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor | None,
                cache: VARCache | None, slots: slice | None) -> torch.Tensor:
        b, _, c = x.shape
        if hasattr(self, "ada_gss"):
            mod = self.ada_gss + cond  # cond is already (R, 1, 6, C)
        else:
            mod = self.ada_lin(cond).view(-1, 1, 6, c)  # (R, 1, 6, C)
        gamma1, gamma2, scale1, scale2, shift1, shift2 = mod.unbind(2)  # (R, 1, C) each
        h = self.ln_wo_grad(x) * (scale1 + 1) + shift1
        x = x + self.attn(h, mask, cache, self.layer, slots) * gamma1
        h = self.ln_wo_grad(x) * (scale2 + 1) + shift2
        return x + self.ffn(h) * gamma2


class AdaLNBeforeHead(nn.Module):
    def __init__(self, cfg: VARConfig) -> None:
        super().__init__()
        self.ln_wo_grad = nn.LayerNorm(cfg.width, eps=cfg.norm_eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(cfg.width, 2 * cfg.width))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.ada_lin(cond).view(-1, 1, 2, x.shape[-1]).unbind(2)  # (R, 1, C) each
        return self.ln_wo_grad(x) * (scale + 1) + shift


class SharedAdaLin(nn.Linear):
    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return super().forward(cond).view(-1, 1, 6, self.weight.shape[0] // 6)  # (R, 1, 6, C)


class VAR(nn.Module):
    """Returns logits over the VAE codebook for the next scale's tokens.

    Call as ``model(x, cache=None, num_logits=None)`` (the next-scale loop's signature) with
    ``x`` one of: class labels (R, 1), which starts a sequence (the first scale's inputs);
    next-scale features (R, n, Cvae), which continue the sequence in ``cache``; or a pair
    (labels (R, 1), features (R, T, Cvae)), the whole sequence at once under the block-causal
    mask (no cache). Labels equal to ``num_classes`` are the unconditional (null) class.
    Returns logits (R, N, V) for the last ``num_logits`` positions (all when None).
    """

    def __init__(self, cfg: VARConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or VARConfig()
        c, first = cfg.width, cfg.patch_nums[0] ** 2
        std = (1 / c / 3) ** 0.5  # the reference's init scale, for random models in tests
        self.word_embed = nn.Linear(cfg.vae_channels, c)
        self.class_emb = nn.Embedding(cfg.num_classes + 1, c)  # last row: the null class (CFG)
        self.pos_start = nn.Parameter(torch.randn(1, first, c) * std)
        self.pos_1LC = nn.Parameter(torch.randn(1, cfg.seq_len, c) * std)
        self.lvl_embed = nn.Embedding(len(cfg.patch_nums), c)
        self.shared_ada_lin = nn.Sequential(nn.SiLU(), SharedAdaLin(c, 6 * c)) if cfg.shared_aln else nn.Identity()
        self.blocks = nn.ModuleList(AdaLNSelfAttn(cfg, i) for i in range(cfg.depth))
        self.head_nm = AdaLNBeforeHead(cfg)
        self.head = nn.Linear(c, cfg.vocab_size)
        # persistent buffers in the released checkpoints: each position's scale, and the
        # additive block-causal mask (0 where the key's scale <= the query's, else -inf)
        lvl = torch.cat([torch.full((s * s,), k) for k, s in enumerate(cfg.patch_nums)])  # (L,)
        self.register_buffer("lvl_1L", lvl[None])  # (1, L)
        bias = torch.where(lvl[:, None] >= lvl[None, :], 0.0, -torch.inf)
        self.register_buffer("attn_bias_for_masking", bias[None, None])  # (1, 1, L, L)

    def num_params(self) -> int:
        """Parameters only (not buffers), as the reference's ``[INIT][#para]`` printout counts."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch: int, capacity: int | None = None, dtype: torch.dtype | None = None) -> VARCache:
        """A cache for ``batch`` rows of up to ``capacity`` positions (default: all scales)."""
        c, w = self.cfg, self.head.weight
        return VARCache(c.depth, batch, c.num_heads, capacity or c.seq_len, c.head_dim,
                        device=w.device, dtype=dtype or w.dtype)

    def forward(self, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor], cache: VARCache | None = None,
                num_logits: int | None = None) -> torch.Tensor:
        feats = None
        if isinstance(x, tuple):
            labels, feats = x
        elif x.is_floating_point():
            labels, feats = None, x
        else:
            labels = x
        parts = []
        if labels is not None:
            cond = self.class_emb(labels[:, 0])  # (R, D)
            parts.append(cond[:, None] + self.pos_start)  # (R, s_0^2, C)
            if cache is not None:
                cache.cond = cond
        else:
            if cache is None or cache.cond is None:
                raise ValueError("features continue a sequence: pass the cache that holds its start")
            cond = cache.cond
        if feats is not None:
            parts.append(self.word_embed(feats.float()))  # (R, n, C)
        h = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]  # (R, T, C)
        r, t, _ = h.shape
        start = cache.length if cache is not None else 0
        lvl_pos = self.lvl_embed(self.lvl_1L[:, start:start + t]) + self.pos_1LC[:, start:start + t]  # (1, T, C)
        h = h + lvl_pos
        slots, mask = None, None
        if cache is not None:
            # this scale's queries read every cached key: its own scale and the coarser ones
            slots = cache.reserve(torch.arange(start, start + t, device=h.device).expand(r, t))
        elif t > self.cfg.patch_nums[0] ** 2:
            mask = self.attn_bias_for_masking[:, :, :t, :t]
        mod = self.shared_ada_lin(cond)
        for block in self.blocks:
            h = block(h, mod, mask, cache, slots)
        if num_logits is not None:
            h = h[:, -num_logits:]
        return self.head(self.head_nm(h.float(), cond)).float()  # (R, N, V)
