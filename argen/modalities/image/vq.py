"""Image tokenizers: a convolutional VQ autoencoder whose quantiser is either one scale (a plain
VQ, LlamaGen-style raster tokens) or several residual scales (VAR-style next-scale tokens).

Multi-scale residual quantisation (Tian et al. 2024, "Visual Autoregressive Modeling"; facts
from FoundationVision/VAR ``models/quant.py``): with the encoder's features ``f`` (B, C, h, w)
and ``f_hat = 0``, each scale ``s`` quantises ``area-downsample(f - f_hat)`` to an s x s grid of
codes, upsamples their embeddings back to h x w (bicubic), passes them through a small
residual conv ``phi`` and adds them to ``f_hat``. The decoder reads the final ``f_hat``. With
``scales == (h,)`` this is an ordinary VQ-VAE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from argen.engine.config import DictConfig
from argen.engine.frozen_codes import FreezableCodes


@dataclass
class VQConfig(DictConfig):
    image_size: int = 64
    in_channels: int = 3
    width: int = 64  # conv channels at full resolution (doubled once per downsampling, capped)
    downsample: int = 3  # latent grid = image_size / (patch * 2**downsample) (64 -> 8)
    patch: int = 1  # pixel-unshuffle the input by this factor first (and shuffle the output back): cheaper convs
    latent_dim: int = 32
    codebook_size: int = 512
    scales: list[int] = field(default_factory=lambda: [8])  # [8]: plain VQ; [1, 2, 4, 8]: next-scale
    beta: float = 0.25  # commitment weight
    phi_ratio: float = 0.5  # VAR's quant_resi: h * (1 - r) + conv(h) * r
    ema_decay: float | None = None  # codebook by exponential moving averages of its features (VQ-VAE-2); None: by gradient

    def __post_init__(self) -> None:
        grid = self.grid
        if self.scales[-1] != grid or sorted(self.scales) != list(self.scales):
            raise ValueError(f"scales must increase and end at the latent grid size {grid}, got {self.scales}")

    @property
    def grid(self) -> int:
        return self.image_size // (self.patch * 2**self.downsample)

    @property
    def tokens_per_image(self) -> int:
        return sum(s * s for s in self.scales)



def to_unit(images) -> torch.Tensor:
    """uint8 images (N, H, W, 3), numpy or torch -> float (N, 3, H, W) in [-1, 1]."""
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1


def to_uint8(x: torch.Tensor):
    """float (N, 3, H, W) in [-1, 1] -> uint8 numpy images (N, H, W, 3)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
                                  nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _widths(cfg: VQConfig) -> list[int]:
    return [min(cfg.width * 2**i, cfg.width * 4) for i in range(cfg.downsample + 1)]


class Encoder(nn.Module):
    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        w = _widths(cfg)
        layers: list[nn.Module] = [nn.PixelUnshuffle(cfg.patch), nn.Conv2d(cfg.in_channels * cfg.patch**2, w[0], 3, padding=1)]
        for i in range(cfg.downsample):
            layers += [ResBlock(w[i]), nn.Conv2d(w[i], w[i + 1], 4, stride=2, padding=1)]
        layers += [ResBlock(w[-1]), nn.GroupNorm(8, w[-1]), nn.SiLU(), nn.Conv2d(w[-1], cfg.latent_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 3, H, W) -> (B, C, h, w)


class Decoder(nn.Module):
    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        w = _widths(cfg)[::-1]
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_dim, w[0], 3, padding=1), ResBlock(w[0])]
        for i in range(cfg.downsample):
            layers += [nn.ConvTranspose2d(w[i], w[i + 1], 4, stride=2, padding=1), ResBlock(w[i + 1])]
        layers += [nn.GroupNorm(8, w[-1]), nn.SiLU(), nn.Conv2d(w[-1], cfg.in_channels * cfg.patch**2, 3, padding=1),
                   nn.PixelShuffle(cfg.patch)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # (B, C, h, w) -> (B, 3, H, W), images in [-1, 1]


class MultiScaleQuantizer(nn.Module):
    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.codebook = nn.Embedding(cfg.codebook_size, cfg.latent_dim)
        nn.init.uniform_(self.codebook.weight, -1 / cfg.codebook_size, 1 / cfg.codebook_size)
        self.phi = nn.Conv2d(cfg.latent_dim, cfg.latent_dim, 3, padding=1)
        # training only: how often each code was picked since the last restart, and recent
        # features to re-seed unused codes from
        self.register_buffer("usage", torch.zeros(cfg.codebook_size), persistent=False)
        self._recent: torch.Tensor | None = None
        if cfg.ema_decay:
            self.codebook.weight.requires_grad_(False)
            self.register_buffer("ema_count", torch.ones(cfg.codebook_size), persistent=False)
            self.register_buffer("ema_sum", self.codebook.weight.detach().clone(), persistent=False)

    def _lookup(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest codes of z (B, C, s, s): indices (B, s, s)."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B*s*s, C)
        e = self.codebook.weight
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None]
        return d.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])

    def _embed(self, idx: torch.Tensor, size: int) -> torch.Tensor:
        """Codes (B, s, s) -> their contribution to f_hat, (B, C, size, size)."""
        h = self.codebook(idx).permute(0, 3, 1, 2)  # (B, C, s, s)
        if h.shape[-1] != size:
            h = F.interpolate(h, size=(size, size), mode="bicubic")
        r = self.cfg.phi_ratio
        return h * (1 - r) + self.phi(h) * r

    def quantize(self, f: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """f (B, C, h, w) -> (f_hat (B, C, h, w), indices per scale [(B, s, s), ...])."""
        size, k = f.shape[-1], self.cfg.codebook_size
        f_hat = torch.zeros_like(f)
        indices = []
        counts, sums = torch.zeros(k, device=f.device), torch.zeros(k, f.shape[1], device=f.device)
        for s in self.cfg.scales:
            rest = f - f_hat
            z = rest if s == size else F.interpolate(rest, size=(s, s), mode="area")
            idx = self._lookup(z)
            if self.training:
                flat = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B*s*s, C)
                counts += torch.bincount(idx.flatten(), minlength=k)
                sums.index_add_(0, idx.flatten(), flat)
                self._recent = flat
            indices.append(idx)
            f_hat = f_hat + self._embed(idx, size)
        if self.training:
            self.usage += counts
            if self.cfg.ema_decay:
                self._ema_update(counts, sums)
        return f_hat, indices

    @torch.no_grad()
    def _ema_update(self, counts: torch.Tensor, sums: torch.Tensor, eps: float = 1e-5) -> None:
        """Move each code to the running mean of the features it was picked for."""
        d = self.cfg.ema_decay
        self.ema_count.mul_(d).add_(counts, alpha=1 - d)
        self.ema_sum.mul_(d).add_(sums, alpha=1 - d)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + eps) / (n + self.cfg.codebook_size * eps) * n  # Laplace smoothing
        self.codebook.weight.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def restart_dead_codes(self, gen: torch.Generator | None = None) -> int:
        """Move codes unused since the last call onto recent encoder features (a standard cure
        for codebook collapse); returns how many moved."""
        dead = (self.usage == 0).nonzero().flatten()
        if len(dead) and self._recent is not None:
            pick = torch.randint(0, self._recent.shape[0], (len(dead),), generator=gen)
            self.codebook.weight[dead] = self._recent[pick].to(self.codebook.weight.dtype)
            if self.cfg.ema_decay:
                self.ema_sum[dead] = self.codebook.weight[dead]
                self.ema_count[dead] = 1.0
        self.usage.zero_()
        return len(dead)

    def next_input(self, k: int, f_hat: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """VAR's step between scales: add scale k's codes (B, s, s) to the running f_hat
        (B, C, h, w) and area-downsample the sum to scale k+1's grid. Returns (f_hat, (B, C, s', s'))."""
        size = f_hat.shape[-1]
        f_hat = f_hat + self._embed(codes, size)
        s = self.cfg.scales[k + 1]
        return f_hat, (f_hat if s == size else F.interpolate(f_hat, size=(s, s), mode="area"))

    def scale_inputs(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """Per-scale codes [(B, s, s), ...] -> the inputs of every scale after the first, as a
        transformer reads them: (B, sum of s_k^2 for k >= 1, C)."""
        g = self.cfg.grid
        f_hat = torch.zeros(indices[0].shape[0], self.cfg.latent_dim, g, g, device=indices[0].device)
        out = []
        for k, codes in enumerate(indices[:-1]):
            f_hat, nxt = self.next_input(k, f_hat, codes)
            out.append(nxt.flatten(2).transpose(1, 2))
        return torch.cat(out, dim=1)

    def dequantize(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """Indices per scale -> f_hat (B, C, h, w)."""
        size = self.cfg.grid
        return sum(self._embed(idx, size) for idx in indices)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(straight-through f_hat, VQ loss, indices). The loss pulls codes to the features
        and, weighted by beta, the features to their codes."""
        f_hat, indices = self.quantize(f)
        loss = F.mse_loss(f_hat, f.detach()) + self.cfg.beta * F.mse_loss(f_hat.detach(), f)
        return f + (f_hat - f).detach(), loss, indices


class ImageTokenizer(FreezableCodes):
    """Images (B, 3, H, W) in [-1, 1] <-> token ids (B, L), L = sum of scale**2, coarse first."""

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = MultiScaleQuantizer(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction (B, 3, H, W) and the VQ loss, for training. The quantiser runs in
        float32 even under autocast: nearest-code search in bf16 picks wrong codes."""
        f = self.encoder(x)
        with torch.autocast(x.device.type, enabled=False):
            f_hat, vq_loss, _ = self.quantizer(f.float())
        return self.decoder(f_hat), vq_loss

    def scale_slices(self) -> list[slice]:
        """Where each scale's tokens sit in the flat sequence."""
        out, start = [], 0
        for s in self.cfg.scales:
            out.append(slice(start, start + s * s))
            start += s * s
        return out

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        _, indices = self.quantizer.quantize(self.encoder(x))
        return torch.cat([i.flatten(1) for i in indices], dim=1)  # (B, L)

    def split(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Flat tokens (B, L) -> per-scale grids [(B, s, s), ...]."""
        return [tokens[:, sl].reshape(-1, s, s) for sl, s in zip(self.scale_slices(), self.cfg.scales)]

    @torch.no_grad()
    def scale_inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Flat tokens (B, L) -> VAR's teacher-forcing inputs of scales 2.. (B, L - 1, C), in float32."""
        with torch.autocast(tokens.device.type, enabled=False):
            return self.quantizer.scale_inputs(self.split(tokens))

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantizer.dequantize(self.split(tokens))).clamp(-1, 1)


def save_tokenizer_dir(out, model: ImageTokenizer, extra: dict | None = None, dtype: torch.dtype = torch.float32) -> None:
    """Write model.safetensors (float tensors in ``dtype``) and config.json ({"format": "argen", "vq": {...}})
    into ``out``."""
    from argen.checkpoints.argen_format import save_folder

    meta = {"modality": "image-tokenizer", "vq": model.cfg.to_dict(), **(extra or {})}
    save_folder(out, model.state_dict(), meta, dtype)


def load_tokenizer_dir(path) -> tuple[ImageTokenizer, dict]:
    """Load an image tokenizer folder (eval mode, CPU, float32) and its config."""
    from pathlib import Path

    from argen.checkpoints.argen_format import first_line, read_json, read_safetensors
    from argen.errors import ArgenError

    path = Path(path)
    meta = read_json(path / "config.json")
    try:
        cfg = VQConfig(**meta["vq"])
    except (KeyError, TypeError, ValueError) as e:
        raise ArgenError(f"{path / 'config.json'}: invalid image tokenizer config ({first_line(e)})",
                         hint="the file is corrupt or not an image tokenizer") from None
    model = ImageTokenizer(cfg)
    state = read_safetensors(path / "model.safetensors")
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as e:
        raise ArgenError(f"{path}: weights do not match the config ({first_line(e)})",
                         hint="the config.json and weight files come from different models") from None
    return model.eval(), meta
