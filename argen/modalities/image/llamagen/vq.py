"""LlamaGen's image tokenizer (VQ-16, ``vq_ds16_c2i.pt``): a VQGAN-style conv autoencoder with a
16384 x 8 codebook looked up by cosine similarity (L2-normalised features and codes).

Facts (layer layout, channel widths, GroupNorm(32, eps 1e-6), the asymmetric (0, 1, 0, 1) pad of
the stride-2 downsampling conv, attention only at the lowest resolution, the decoder's
``num_res_blocks + 1`` blocks per level, the 1x1 ``quant_conv``/``post_quant_conv``) are from
FoundationVision/LlamaGen ``tokenizer/tokenizer_image/vq_model.py``. Module names follow that
file's state dict, so an official checkpoint loads by name with strict key matching.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from argen.engine.config import DictConfig
from argen.modalities.image.conv_blocks import Downsample, ResnetBlock, Upsample, group_norm, swish
from argen.modalities.image.vq import to_unit

# the reference keeps a 65536-entry history of used code ids (a training statistic that
# inference never reads) as a buffer, so it is in every official state dict
USAGE_BUFFER = "quantize.codebook_used"


@dataclass
class LlamaGenVQConfig(DictConfig):
    """The tokenizer's shape; the defaults are the released VQ-16 (``vq_ds16_c2i.pt``)."""

    codebook_size: int = 16384
    codebook_dim: int = 8
    codebook_l2_norm: bool = True
    ch: int = 128
    encoder_ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    decoder_ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    z_channels: int = 256
    num_res_blocks: int = 2
    norm_groups: int = 32
    in_channels: int = 3

    @property
    def downsample(self) -> int:
        """Pixels per token side (16 for VQ-16)."""
        return 2 ** (len(self.encoder_ch_mult) - 1)



class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels, with 1x1 conv projections."""

    def __init__(self, ch: int, groups: int) -> None:
        super().__init__()
        self.norm = group_norm(ch, groups)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(ch, ch, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the reference's exact arithmetic: two bmm over the same (non-contiguous) views and a
        # softmax; scaled_dot_product_attention rounds differently, which moves decoded pixels
        b, c, hh, ww = x.shape
        h = self.norm(x)
        q = self.q(h).reshape(b, c, hh * ww).permute(0, 2, 1)  # (B, HW, C)
        k = self.k(h).reshape(b, c, hh * ww)  # (B, C, HW)
        att = F.softmax(torch.bmm(q, k) * (int(c) ** -0.5), dim=2)  # (B, HW_q, HW_k)
        v = self.v(h).reshape(b, c, hh * ww)  # (B, C, HW)
        y = torch.bmm(v, att.permute(0, 2, 1))  # (B, C, HW_q)
        return x + self.proj_out(y.reshape(b, c, hh, ww))


def _level(res: list[nn.Module], attn: list[nn.Module], resample: nn.Module | None, name: str) -> nn.Module:
    # an attribute bag, so the keys read conv_blocks.{i}.res.{j} / .attn.{j} / .downsample.conv
    level = nn.Module()
    level.res, level.attn = nn.ModuleList(res), nn.ModuleList(attn)
    if resample is not None:
        setattr(level, name, resample)
    return level


def _middle(ch: int, groups: int) -> nn.ModuleList:
    return nn.ModuleList([ResnetBlock(ch, ch, groups, swish), AttnBlock(ch, groups),
                          ResnetBlock(ch, ch, groups, swish)])


def _run_level(level: nn.Module, h: torch.Tensor) -> torch.Tensor:
    for i, block in enumerate(level.res):
        h = block(h)
        if len(level.attn):
            h = level.attn[i](h)
    return h


class Encoder(nn.Module):
    def __init__(self, cfg: LlamaGenVQConfig) -> None:
        super().__init__()
        g, mult = cfg.norm_groups, cfg.encoder_ch_mult
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        self.conv_blocks = nn.ModuleList()
        c_in = cfg.ch
        for i, m in enumerate(mult):
            last = i == len(mult) - 1
            res, attn = [], []
            for _ in range(cfg.num_res_blocks):
                res.append(ResnetBlock(c_in, cfg.ch * m, g, swish))
                c_in = cfg.ch * m
                if last:
                    attn.append(AttnBlock(c_in, g))
            self.conv_blocks.append(_level(res, attn, None if last else Downsample(c_in), "downsample"))
        self.mid = _middle(c_in, g)
        self.norm_out = group_norm(c_in, g)
        self.conv_out = nn.Conv2d(c_in, cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.conv_blocks:
            h = _run_level(level, h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        for block in self.mid:
            h = block(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: LlamaGenVQConfig) -> None:
        super().__init__()
        g, mult = cfg.norm_groups, cfg.decoder_ch_mult
        c_in = cfg.ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, c_in, 3, padding=1)
        self.mid = _middle(c_in, g)
        self.conv_blocks = nn.ModuleList()  # from the lowest resolution up
        for i in reversed(range(len(mult))):
            res, attn = [], []
            for _ in range(cfg.num_res_blocks + 1):
                res.append(ResnetBlock(c_in, cfg.ch * mult[i], g, swish))
                c_in = cfg.ch * mult[i]
                if i == len(mult) - 1:
                    attn.append(AttnBlock(c_in, g))
            self.conv_blocks.append(_level(res, attn, Upsample(c_in) if i != 0 else None, "upsample"))
        self.norm_out = group_norm(c_in, g)
        self.conv_out = nn.Conv2d(c_in, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h)
        for level in self.conv_blocks:
            h = _run_level(level, h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class Quantizer(nn.Module):
    def __init__(self, cfg: LlamaGenVQConfig) -> None:
        super().__init__()
        self.l2_norm = cfg.codebook_l2_norm
        self.embedding = nn.Embedding(cfg.codebook_size, cfg.codebook_dim)

    def codebook(self) -> torch.Tensor:
        """(K, D) codes as the decoder sees them (unit length when ``l2_norm``)."""
        w = self.embedding.weight
        return F.normalize(w, p=2, dim=-1) if self.l2_norm else w

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code (squared L2, after normalising both sides) of each vector of z (B, D, h, w) -> (B, h, w)."""
        z = z.permute(0, 2, 3, 1)  # (B, h, w, D)
        if self.l2_norm:
            z = F.normalize(z, p=2, dim=-1)
        e = self.codebook()
        dist = z.pow(2).sum(-1, keepdim=True) + e.pow(2).sum(-1) - 2 * z @ e.t()  # (B, h, w, K)
        return dist.argmin(-1)

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """Code ids (B, h, w) -> code vectors (B, D, h, w)."""
        return self.codebook()[idx].permute(0, 3, 1, 2).contiguous()


class LlamaGenVQ(nn.Module):
    """Image (B, 3, H, W) in [-1, 1] <-> code ids (B, H/16, W/16)."""

    def __init__(self, cfg: LlamaGenVQConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or LlamaGenVQConfig()
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = Quantizer(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.codebook_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.codebook_dim, cfg.z_channels, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> code ids (B, H/16, W/16)."""
        return self.quantize.indices(self.quant_conv(self.encoder(x)))

    def decode(self, idx: torch.Tensor) -> torch.Tensor:
        """Code ids (B, h, w) -> images (B, 3, 16h, 16w), nominally in [-1, 1] (not clamped)."""
        return self.decoder(self.post_quant_conv(self.quantize.lookup(idx)))


@torch.inference_mode()
def images_to_indices(vq: LlamaGenVQ, images) -> torch.Tensor:
    """uint8 images (B, H, W, 3), numpy or torch, H and W multiples of 16 -> code ids (B, H/16, W/16)."""
    w = vq.quant_conv.weight
    return vq.encode(to_unit(images).to(w.device, w.dtype))


def to_uint8(x: torch.Tensor):
    """Decoded images (B, 3, H, W), nominally in [-1, 1] -> uint8 numpy (B, H, W, 3), as
    LlamaGen's ``autoregressive/sample/sample_c2i_ddp.py`` writes its PNGs (the samples of its
    FID figures): ``clamp(127.5 * x + 128, 0, 255)``, then truncated to uint8."""
    return torch.clamp(127.5 * x + 128.0, 0, 255).permute(0, 2, 3, 1).to("cpu", dtype=torch.uint8).numpy()


@torch.inference_mode()
def indices_to_images(vq: LlamaGenVQ, idx: torch.Tensor):
    """Code ids (B, h, w) -> uint8 numpy images (B, 16h, 16w, 3)."""
    return to_uint8(vq.decode(idx.to(vq.quant_conv.weight.device)).float())
