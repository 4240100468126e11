"""The Wan 2.1 video transformer on argen's engine pieces (SkyReels-V2, Wan2.1-T2V, Self-Forcing).

The architecture follows diffusers' ``SkyReelsV2Transformer3DModel`` and ``WanTransformer3DModel``
(``diffusers/models/transformers/transformer_skyreels_v2.py``, ``transformer_wan.py``): a patch
embedding of the latent video (B, C, F, H, W) into one token per (frame, 2x2 patch); a
sinusoidal embedding of each latent frame's timestep, projected to six modulation vectors that
every block adds to its own learned table (shift, scale, gate of the self-attention and of the
feed-forward; the time per frame is what makes diffusion forcing possible); self-attention with
RMSNorm over all heads' queries and keys and a 3-D RoPE whose channels split into time, row and
column; cross-attention to the projected umT5 embeddings; a GELU(tanh) feed-forward; LayerNorms
in float32 without affine weights (the cross-attention norm has them); a modulated head.

argen pieces: self-attention is the engine's :class:`~argen.engine.transformer.Attention` (its
``qk_norm`` option), the feed-forward the engine's :class:`~argen.engine.transformer.MLP`, and
the cache the engine's :class:`~argen.engine.kv_cache.KVCache`: finished latent frames are
written once and read by every later pass; masks come from the positions the cache records. The
RoPE pairs of Wan are interleaved (channels 2i, 2i+1); the converter permutes the query and key
channels so that argen's half-split :func:`~argen.engine.rope.apply_rope` turns the same pairs.
The text's keys and values are computed once per generation (:meth:`WanModel.text_context`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from argen.engine.config import TransformerConfig
from argen.engine.kv_cache import KVCache
from argen.engine.transformer import MLP, Attention, RMSNorm
from argen.modalities.video.skyreels.config import WanConfig


def backbone_config(cfg: WanConfig) -> TransformerConfig:
    """The engine config of one block's self-attention and feed-forward."""
    return TransformerConfig(n_layer=cfg.layers, n_head=cfg.heads, d_model=cfg.dim, head_dim=cfg.head_dim,
                             d_ff=cfg.ffn_dim, mlp="gelu_tanh", qkv_bias=True, out_bias=True, mlp_bias=True,
                             qk_norm=True, norm_eps=cfg.eps, max_seq_len=1)


class CrossAttention(nn.Module):
    """Queries from the video tokens, keys and values from the text (no mask, no RoPE)."""

    def __init__(self, cfg: WanConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(d, d) for _ in range(4))
        self.q_norm, self.k_norm = RMSNorm(d, cfg.eps), RMSNorm(d, cfg.eps)

    def context(self, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected text (R, L, d) -> keys and values, each (R, H, L, hd)."""
        r, n, _ = ctx.shape
        k = self.k_norm(self.k_proj(ctx)).view(r, n, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(ctx).view(r, n, self.heads, self.head_dim).transpose(1, 2)
        return k, v

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        b, n, d = x.shape
        q = self.q_norm(self.q_proj(x)).view(b, n, self.heads, self.head_dim).transpose(1, 2)  # (B, H, N, hd)
        y = F.scaled_dot_product_attention(q, *kv)
        return self.o_proj(y.transpose(1, 2).reshape(b, n, d))


class WanBlock(nn.Module):
    def __init__(self, cfg: WanConfig, layer: int) -> None:
        super().__init__()
        tc = backbone_config(cfg)
        self.eps = cfg.eps
        self.attn = Attention(tc, layer)
        self.cross_norm = nn.LayerNorm(cfg.dim, eps=cfg.eps) if cfg.cross_attn_norm else None
        self.cross = CrossAttention(cfg)
        self.mlp = MLP(tc)
        self.table = nn.Parameter(torch.zeros(1, 6, cfg.dim))  # added to the time's six vectors

    def forward(self, x: torch.Tensor, tproj: torch.Tensor, rope, mask, cache: KVCache | None, slots,
                kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """x (B, N, d) tokens of F frames; tproj (B, F, 6, d) the frames' time vectors."""
        b, n, d = x.shape
        f = tproj.shape[1]
        e = (self.table[:, None].float() + tproj.float())[:, :, :, None]  # (B, F, 6, 1, d), float32 as diffusers
        shift1, scale1, gate1, shift2, scale2, gate2 = e.unbind(2)

        def frames(z: torch.Tensor) -> torch.Tensor:  # (B, N, d) -> (B, F, S, d): one vector per frame
            return z.view(b, f, n // f, d)

        h = (frames(F.layer_norm(x.float(), (d,), eps=self.eps)) * (1 + scale1) + shift1).view(b, n, d).to(x.dtype)
        a = self.attn(h, rope, mask, cache, slots)
        x = (x.float() + (frames(a) * gate1).view(b, n, d)).to(x.dtype)
        if self.cross_norm is not None:
            w, bias = self.cross_norm.weight.float(), self.cross_norm.bias.float()
            h = F.layer_norm(x.float(), (d,), w, bias, self.eps).to(x.dtype)
        else:
            h = x
        x = x + self.cross(h, kv)
        h = (frames(F.layer_norm(x.float(), (d,), eps=self.eps)) * (1 + scale2) + shift2).view(b, n, d).to(x.dtype)
        y = self.mlp(h)
        return (x.float() + (frames(y.float()) * gate2).view(b, n, d)).to(x.dtype)


class WanModel(nn.Module):
    """Velocity of a latent video (B, C, F, H, W) at per-frame flow timesteps (B, F) in [0, 1000]."""

    def __init__(self, cfg: WanConfig) -> None:
        super().__init__()
        if cfg.patch[0] != 1:
            raise ValueError("only a temporal patch of 1 is supported (every Wan 2.1 model)")
        self.cfg = cfg
        d, p = cfg.dim, math.prod(cfg.patch)
        self.patch_in = nn.Linear(cfg.in_channels * p, d)
        self.time_in = nn.Sequential(nn.Linear(cfg.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_proj = nn.Linear(d, 6 * d)
        self.text_in = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        if cfg.inject_sample_info:  # SkyReels-V2-DF: an fps class (16 fps or not) shifts the six vectors
            self.fps_embed = nn.Embedding(2, d)
            self.fps_proj = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, 6 * d))
        self.blocks = nn.ModuleList(WanBlock(cfg, i) for i in range(cfg.layers))
        self.head = nn.Linear(d, cfg.out_channels * p)
        self.head_table = nn.Parameter(torch.zeros(1, 2, d))

    @property
    def dtype(self) -> torch.dtype:
        return self.patch_in.weight.dtype

    def set_dtype(self, dtype: torch.dtype) -> WanModel:
        """Cast to ``dtype``, keeping the time embedding and the modulation tables in float32 (as
        diffusers' ``_keep_in_fp32_modules``: the six vectors are summed and applied in float32)."""
        self.to(dtype)
        self.time_in.float()
        self.head_table.data = self.head_table.data.float()
        for blk in self.blocks:
            blk.table.data = blk.table.data.float()
            if blk.cross_norm is not None:
                blk.cross_norm.float()
        return self

    # --- conditioning -----------------------------------------------------------------------
    def text_context(self, embeds: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """umT5 embeddings (R, L, text_dim) -> every block's cross-attention keys and values."""
        ctx = self.text_in(embeds.to(self.dtype))
        return [blk.cross.context(ctx) for blk in self.blocks]

    def time_embed(self, t: torch.Tensor, fps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Timesteps (B, F) -> temb (B, F, d) and the six block vectors (B, F, 6, d)."""
        half = self.cfg.freq_dim // 2
        if self.cfg.time_f64:
            omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64, device=t.device) / half)
            args = t.double()[..., None] * omega
        else:
            freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
            args = t.float()[..., None] * freqs
        sinusoid = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).float()  # (B, F, freq_dim)
        temb = self.time_in(sinusoid).to(self.dtype)
        tproj = self.time_proj(F.silu(temb)).unflatten(-1, (6, -1))  # (B, F, 6, d)
        if self.cfg.inject_sample_info:
            if fps is None:
                raise ValueError("this model takes an fps class (0: 16 fps, 1: otherwise)")
            tproj = tproj + self.fps_proj(self.fps_embed(fps)).unflatten(-1, (6, -1))[:, None]
        return temb, tproj

    def rope(self, frame0: int, f: int, h: int, w: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin (1, 1, f * h * w, hd) of tokens at frames frame0.., rows 0..h-1, columns 0..w-1.

        Angles are computed in float64 as diffusers' ``get_1d_rotary_pos_embed`` does, with the
        per-axis frequencies ``1 / 10000 ** (2i / dim_axis)``; pair j of the half-split layout
        is Wan's interleaved pair (2j, 2j + 1) after the converter's permutation."""
        dims = self.cfg.rope_dims

        def axis(start: int, n: int, dim: int) -> torch.Tensor:  # (n, dim / 2)
            freqs = 1.0 / 10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim)
            return torch.arange(start, start + n, dtype=torch.float64, device=device)[:, None] * freqs

        at, ah, aw = axis(frame0, f, dims[0]), axis(0, h, dims[1]), axis(0, w, dims[2])
        ang = torch.cat([at[:, None, None].expand(f, h, w, -1), ah[None, :, None].expand(f, h, w, -1),
                         aw[None, None, :].expand(f, h, w, -1)], dim=-1).reshape(f * h * w, -1)
        ang = torch.cat([ang, ang], dim=-1)[None, None]  # (1, 1, N, hd)
        return ang.cos().to(dtype), ang.sin().to(dtype)

    # --- layout -----------------------------------------------------------------------------
    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, F, H, W) -> (B, F * H' * W', C * pt * ph * pw), tokens frame by frame, row-major
        (the order of the Conv3d patch embedding's flattened output)."""
        b, c, f, hh, ww = x.shape
        pt, ph, pw = self.cfg.patch
        x = x.reshape(b, c, f // pt, pt, hh // ph, ph, ww // pw, pw).permute(0, 2, 4, 6, 1, 3, 5, 7)
        return x.reshape(b, (f // pt) * (hh // ph) * (ww // pw), c * pt * ph * pw)

    def unpatchify(self, y: torch.Tensor, f: int, h: int, w: int) -> torch.Tensor:
        """(B, N, pt * ph * pw * C) -> (B, C, F, H, W) (diffusers' proj_out channel order)."""
        b = y.shape[0]
        pt, ph, pw = self.cfg.patch
        y = y.reshape(b, f, h, w, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return y.reshape(b, -1, f * pt, h * ph, w * pw)

    @staticmethod
    def block_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, frame_tokens: int, block: int):
        """Attention mask (1, 1, T, S) from token positions (frame * frame_tokens + index): a query
        reads keys of its own causal block of ``block`` frames and earlier ones; "none" when it may
        read every key (no causal blocks, or only earlier blocks in the cache)."""
        if block <= 1:
            return "none"
        qb = torch.div(q_pos, frame_tokens * block, rounding_mode="floor")
        kb = torch.div(k_pos, frame_tokens * block, rounding_mode="floor")
        allowed = (kb[None, :] <= qb[:, None]) & (k_pos >= 0)[None, :]
        return "none" if bool(allowed.all()) else allowed[None, None]

    # --- passes -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor, text_kv: list, *, frame0: int = 0,
                cache: KVCache | None = None, commit: bool = True, block: int = 0,
                fps: torch.Tensor | None = None) -> torch.Tensor:
        """Velocity (B, C, F, H, W) of latents x (B, C, F, H, W) at timesteps t (B, F).

        ``frame0``: the first frame's index (RoPE time and cache positions). ``block`` > 1 makes
        attention block-causal over frames (diffusers' ``num_frame_per_block``). With a ``cache``
        the frames also attend to what it holds; ``commit=False`` rolls it back afterwards (a
        denoising pass), ``commit=True`` keeps the frames' keys and values (finished frames).
        ``text_kv``: :meth:`text_context` of the batch's rows; ``fps`` (B,) for fps-aware models.
        """
        b, _, f, hh, ww = x.shape
        h2, w2 = hh // self.cfg.patch[1], ww // self.cfg.patch[2]
        s = h2 * w2
        h = self.patch_in(self.patchify(x.to(self.dtype)))  # (B, N, d)
        temb, tproj = self.time_embed(t, fps)
        rope = self.rope(frame0, f, h2, w2, x.device, h.dtype)
        pos = torch.arange(frame0 * s, (frame0 + f) * s, device=x.device)
        slots, length = None, 0
        if cache is not None:
            length = cache.length
            slots = cache.reserve(pos.expand(b, -1))
            mask = self.block_mask(pos, cache.key_pos()[0], s, block)
        else:
            mask = self.block_mask(pos, pos, s, block)
        for blk, kv in zip(self.blocks, text_kv):
            h = blk(h, tproj, rope, mask, cache, slots, kv)
        if cache is not None and not commit:
            cache.truncate(length)
        shift, scale = (self.head_table[:, :, None].float() + temb[:, None]).unbind(1)  # (B, F, d) each
        d = h.shape[-1]
        h = F.layer_norm(h.float(), (d,), eps=self.cfg.eps).view(b, f, s, d)
        h = (h * (1 + scale[:, :, None]) + shift[:, :, None]).view(b, f * s, d).to(self.dtype)
        return self.unpatchify(self.head(h), f, h2, w2)

    def new_cache(self, batch: int, frames: int, frame_tokens: int) -> KVCache:
        """A cache for ``frames`` latent frames of ``frame_tokens`` tokens each."""
        c = self.cfg
        return KVCache(c.layers, batch, c.heads, frames * frame_tokens, c.head_dim,
                       device=self.patch_in.weight.device, dtype=self.dtype)


def count_params(cfg: WanConfig) -> int:
    """Parameters of the argen module built from ``cfg`` on the meta device (no memory used)."""
    with torch.device("meta"):
        model = WanModel(cfg)
    return sum(p.numel() for p in model.parameters())
