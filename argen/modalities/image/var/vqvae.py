"""VAR's multi-scale VQ-VAE (``vae_ch160v4096z32``), laid out so the official checkpoint loads
with ``load_state_dict(strict=True)``.

Facts (module tree, key names, hyper-parameters, formulas) are from FoundationVision/VAR:
``models/vqvae.py`` (VQVAE, the vq-f16 ``ddconfig``), ``models/basic_vae.py`` (Encoder, Decoder,
ResnetBlock, AttnBlock, the padded stride-2 downsample) and ``models/quant.py``
(VectorQuantizer2, Phi, PhiPartiallyShared and its ``ticks``).

An image (B, 3, 16p, 16p) in [-1, 1] is encoded to features ``f`` (B, Cvae, p, p). Scale ``k``
(grid ``s_k``) quantises ``area-downsample(f - f_hat, s_k)`` to codes, whose embeddings are
upsampled back to p x p (bicubic), passed through ``phi_k(h) = (1 - r) h + r conv(h)`` and added
to ``f_hat``. The K scales share 4 convolutions: scale k uses the one whose tick is nearest to
k / (K - 1). The decoder reads the final ``f_hat``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from argen.engine.config import DictConfig
from argen.modalities.image.conv_blocks import Downsample, ResnetBlock, Upsample, group_norm

RELEASED_PATCH_NUMS = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16]


@dataclass
class VQVAEConfig(DictConfig):
    """Defaults are the released ``vae_ch160v4096z32`` (the ``build_vae_var`` arguments and the
    vq-f16 ``ddconfig`` of FoundationVision/VAR ``models/__init__.py`` and ``models/vqvae.py``)."""

    vocab_size: int = 4096
    z_channels: int = 32  # Cvae
    ch: int = 160
    ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    num_res_blocks: int = 2
    using_sa: bool = True  # self-attention at the lowest resolution
    using_mid_sa: bool = True
    quant_conv_ks: int = 3
    quant_resi: float = 0.5  # phi's ratio r
    share_quant_resi: int = 4  # number of shared phi convolutions
    patch_nums: list[int] = field(default_factory=lambda: list(RELEASED_PATCH_NUMS))

    def __post_init__(self) -> None:
        self.ch_mult, self.patch_nums = list(self.ch_mult), list(self.patch_nums)
        if self.share_quant_resi < 2 or not self.quant_resi:
            raise ValueError("only the partially shared phi (share_quant_resi >= 2, quant_resi != 0) is supported")
        if any(self.ch * m % 32 for m in self.ch_mult):
            raise ValueError("every level's channels (ch * ch_mult) must be a multiple of 32 (GroupNorm(32))")
        if sorted(self.patch_nums) != self.patch_nums or len(self.patch_nums) < 2:
            raise ValueError(f"patch_nums must increase and have 2 scales or more, got {self.patch_nums}")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def image_size(self) -> int:
        return self.patch_nums[-1] * self.downsample



class AttnBlock(nn.Module):
    """Single-head self-attention over the h*w positions, with 1x1 convolutions."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm = group_norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj_out = nn.Conv2d(ch, ch, 1)
        self.scale = int(ch) ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the reference's exact arithmetic (two bmm and a softmax, the copies where it makes
        # them): scaled_dot_product_attention rounds differently, which moves decoded pixels
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h, w).unbind(1)  # (B, C, h, w) each
        q = q.reshape(b, c, h * w).contiguous().permute(0, 2, 1).contiguous()  # (B, hw, C)
        k = k.reshape(b, c, h * w).contiguous()  # (B, C, hw)
        att = torch.bmm(q, k).mul_(self.scale).softmax(dim=2)  # (B, hw_q, hw_k)
        v = v.reshape(b, c, h * w).contiguous()  # (B, C, hw)
        y = torch.bmm(v, att.permute(0, 2, 1).contiguous())  # (B, C, hw_q)
        return x + self.proj_out(y.view(b, c, h, w).contiguous())


class Level(nn.Module):
    """One resolution: ``block``s, their ``attn``s (lowest resolution only) and a resampler."""

    def __init__(self, c_in: int, c_out: int, n_blocks: int, attn: bool, resample: str | None) -> None:
        super().__init__()
        self.block = nn.ModuleList(ResnetBlock(c_in if i == 0 else c_out, c_out) for i in range(n_blocks))
        self.attn = nn.ModuleList(AttnBlock(c_out) for _ in range(n_blocks if attn else 0))
        if resample == "down":
            self.downsample = Downsample(c_out)
        elif resample == "up":
            self.upsample = Upsample(c_out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn):
                h = self.attn[i](h)
        if hasattr(self, "downsample"):
            h = self.downsample(h)
        if hasattr(self, "upsample"):
            h = self.upsample(h)
        return h


class Mid(nn.Module):
    def __init__(self, ch: int, attn: bool) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(ch, ch)
        self.attn_1 = AttnBlock(ch) if attn else nn.Identity()
        self.block_2 = ResnetBlock(ch, ch)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class Encoder(nn.Module):
    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        chs = [cfg.ch * m for m in [1] + cfg.ch_mult]
        last = len(cfg.ch_mult) - 1
        self.conv_in = nn.Conv2d(3, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList(
            Level(chs[i], chs[i + 1], cfg.num_res_blocks, cfg.using_sa and i == last, None if i == last else "down")
            for i in range(len(cfg.ch_mult)))
        self.mid = Mid(chs[-1], cfg.using_mid_sa)
        self.norm_out = group_norm(chs[-1])
        self.conv_out = nn.Conv2d(chs[-1], cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)  # (B, ch, H, W)
        for level in self.down:
            h = level(h)
        h = self.mid(h)  # (B, ch * ch_mult[-1], H/16, W/16)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        top = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, top, 3, padding=1)
        self.mid = Mid(top, cfg.using_mid_sa)
        last = len(cfg.ch_mult) - 1
        # up[i] works at the resolution of down[i]; it runs from the top level to level 0
        ins = [cfg.ch * cfg.ch_mult[min(i + 1, last)] for i in range(last + 1)]
        self.up = nn.ModuleList(
            Level(ins[i], cfg.ch * cfg.ch_mult[i], cfg.num_res_blocks + 1, cfg.using_sa and i == last,
                  None if i == 0 else "up")
            for i in range(last + 1))
        self.norm_out = group_norm(cfg.ch * cfg.ch_mult[0])
        self.conv_out = nn.Conv2d(cfg.ch * cfg.ch_mult[0], 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))  # (B, ch * ch_mult[-1], p, p)
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, 3, 16p, 16p)


class Phi(nn.Conv2d):
    """``phi(h) = (1 - r) h + r conv3x3(h)``."""

    def __init__(self, ch: int, ratio: float) -> None:
        super().__init__(ch, ch, 3, padding=1)
        self.ratio = abs(ratio)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * (1 - self.ratio) + super().forward(h) * self.ratio


class PhiPartiallyShared(nn.Module):
    """K convolutions shared by the scales: scale ``k`` of ``n`` uses the conv whose tick is
    nearest to ``k / (n - 1)`` (ticks from FoundationVision/VAR ``models/quant.py``)."""

    def __init__(self, ch: int, ratio: float, k: int) -> None:
        super().__init__()
        self.qresi_ls = nn.ModuleList(Phi(ch, ratio) for _ in range(k))
        margin = 1 / 3 / k if k == 4 else 1 / 2 / k
        # numpy's values exactly: with 10 scales, 2/9 and 7/9 are ties that its rounding breaks
        self.ticks = np.linspace(margin, 1 - margin, k).tolist()

    def index(self, k: int, n: int) -> int:
        at = k / (n - 1)
        dist = [abs(t - at) for t in self.ticks]
        return dist.index(min(dist))  # first of equals, like numpy's argmin

    def forward(self, h: torch.Tensor, k: int, n: int) -> torch.Tensor:
        return self.qresi_ls[self.index(k, n)](h)


class MultiScaleQuantizer(nn.Module):
    """The codebook (V, Cvae), the shared phi convolutions, and the scale-by-scale residual
    quantisation. ``ema_vocab_hit_SV`` is a training statistic, kept for the key layout."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        self.patch_nums = list(cfg.patch_nums)
        self.quant_resi = PhiPartiallyShared(cfg.z_channels, cfg.quant_resi, cfg.share_quant_resi)
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(len(cfg.patch_nums), cfg.vocab_size))
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.z_channels)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, s, s) -> their embeddings as a feature map (B, Cvae, s, s), laid out as the
        reference's sampling loop lays them out (embedding of the flat ids, transposed): the
        layout picks the bicubic and conv kernels, and so the rounding of f_hat."""
        b, s = codes.shape[0], codes.shape[-1]
        return self.embedding(codes.reshape(b, s * s)).transpose(1, 2).reshape(b, -1, s, s)

    def soft_embed(self, weights: torch.Tensor, s: int) -> torch.Tensor:
        """Weights over the codebook (B, s*s, V) -> the weighted code vectors (B, Cvae, s, s), as
        VAR's ``more_smooth`` sampling feeds them instead of one code each (``models/var.py``:
        ``gumbel_softmax_with_rng(...) @ embedding.weight.unsqueeze(0)``)."""
        h = weights @ self.embedding.weight.unsqueeze(0)  # (B, s*s, Cvae)
        return h.transpose(1, 2).reshape(h.shape[0], -1, s, s)

    def residual(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """What scale ``k``'s code vectors h (B, Cvae, s, s) (from :meth:`embed`) add to
        ``f_hat``: (B, Cvae, p, p)."""
        n, p = len(self.patch_nums), self.patch_nums[-1]
        if k != n - 1:
            h = F.interpolate(h, size=(p, p), mode="bicubic")
        return self.quant_resi(h, k, n)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (L2) for each feature vector z (N, Cvae) -> (N,)."""
        w = self.embedding.weight  # (V, Cvae)
        d = z.square().sum(1, keepdim=True) + w.square().sum(1)  # (N, V)
        d = d.addmm(z, w.T, alpha=-2, beta=1)
        return d.argmin(1)

    def quantize(self, f: torch.Tensor) -> list[torch.Tensor]:
        """Features f (B, Cvae, p, p) -> one grid of codes per scale, ``[(B, s, s)]``."""
        b, c, p, _ = f.shape
        n = len(self.patch_nums)
        rest, grids = f.clone(), []
        for k, s in enumerate(self.patch_nums):
            z = F.interpolate(rest, size=(s, s), mode="area") if k != n - 1 else rest  # (B, C, s, s)
            codes = self.nearest(z.permute(0, 2, 3, 1).reshape(-1, c)).view(b, s, s)
            # the reference's encoder lays the embeddings out channels-last and copies them
            # after the upsampling (models/quant.py, f_to_idxBl_or_fhat)
            h = self.embedding(codes).permute(0, 3, 1, 2)  # (B, C, s, s)
            h = (F.interpolate(h, size=(p, p), mode="bicubic") if k != n - 1 else h).contiguous()
            rest = rest - self.quant_resi(h, k, n)
            grids.append(codes)
        return grids

    def to_fhat(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """Codes of every scale ``[(B, s, s)]`` -> f_hat (B, Cvae, p, p)."""
        b, p = grids[0].shape[0], self.patch_nums[-1]
        w = self.embedding.weight
        f_hat = torch.zeros(b, w.shape[1], p, p, dtype=w.dtype, device=w.device)
        for k, codes in enumerate(grids):
            f_hat.add_(self.residual(k, self.embed(codes)))  # in place, as the reference: f_hat stays contiguous
        return f_hat

    def next_step(self, k: int, f_hat: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One sampling step (VAR's ``get_next_autoregressive_input``): add scale ``k``'s codes
        (B, s, s), or under ``more_smooth`` its weights over the codebook (B, s*s, V), to
        ``f_hat`` (B, Cvae, p, p); return the new f_hat and the next scale's input, f_hat
        area-downsampled to (B, Cvae, s', s') (f_hat itself after the last scale)."""
        h = self.soft_embed(codes, self.patch_nums[k]) if codes.is_floating_point() else self.embed(codes)
        f_hat = f_hat.clone().add_(self.residual(k, h))  # f_hat's layout (and rounding) as the reference's in-place add
        if k == len(self.patch_nums) - 1:
            return f_hat, f_hat
        s = self.patch_nums[k + 1]
        return f_hat, F.interpolate(f_hat, size=(s, s), mode="area")


class VQVAE(nn.Module):
    """The multi-scale VQ-VAE; images are float (B, 3, H, W) in [-1, 1]."""

    def __init__(self, cfg: VQVAEConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or VQVAEConfig()
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = MultiScaleQuantizer(cfg)
        pad = cfg.quant_conv_ks // 2
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, cfg.quant_conv_ks, padding=pad)
        self.post_quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, cfg.quant_conv_ks, padding=pad)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encode_features(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) -> features (B, Cvae, H/16, W/16) before quantisation."""
        return self.quant_conv(self.encoder(images))

    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Images (B, 3, H, W) in [-1, 1] -> codes of every scale ``[(B, s, s)]``."""
        return self.quantize.quantize(self.encode_features(images))

    def decode_fhat(self, f_hat: torch.Tensor) -> torch.Tensor:
        """f_hat (B, Cvae, p, p) -> images (B, 3, 16p, 16p) clamped to [-1, 1]."""
        return self.decoder(self.post_quant_conv(f_hat)).clamp(-1, 1)

    def decode(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """Codes of every scale ``[(B, s, s)]`` -> images (B, 3, 16p, 16p) in [-1, 1]."""
        return self.decode_fhat(self.quantize.to_fhat(grids))

    def teacher_inputs(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """The transformer's inputs for every scale after the first, given all codes (VAR's
        ``idxBl_to_var_input``): (B, L - s_0^2, Cvae)."""
        f_hat = torch.zeros_like(self.quantize.to_fhat(grids[:1]))
        inputs = []
        for k, codes in enumerate(grids[:-1]):
            f_hat, nxt = self.quantize.next_step(k, f_hat, codes)  # (B, C, s', s')
            inputs.append(nxt.flatten(2).transpose(1, 2))
        return torch.cat(inputs, dim=1)
