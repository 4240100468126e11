"""The audio tokenizer: a convolutional codec with residual vector quantisation (RVQ), and the
delay pattern that lays its parallel codebook streams out for a language model.

The codec follows the SoundStream / EnCodec layout (Zeghidour et al. 2021; Defossez et al.
2022): strided Conv1d stages with residual units (ELU, or Snake as an option) down to
``sample_rate / hop`` latent frames per second, ``n_codebooks`` residual quantisers (each codes
what the previous ones left), and a mirrored decoder of transposed convolutions. Codebooks are
learned by exponential moving averages, with unused codes restarted on recent features.

The delay pattern is MusicGen's (Copet et al. 2023; facts from facebookresearch/audiocraft
``audiocraft/modules/codebooks_patterns.py``, ``DelayedPatternProvider``): codebook ``k`` is
shifted right by ``k`` steps, so one model step emits one token per codebook and codebook ``k``
of frame ``t`` is sampled after codebooks ``< k`` of the same frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from argen.engine.config import DictConfig
from argen.engine.frozen_codes import FreezableCodes


def apply_delay(codes: torch.Tensor, pad_id: int) -> torch.Tensor:
    """codes (B, K, T) -> delayed (B, K, T + K - 1): row k holds codes[:, k] at steps k .. k+T-1
    and ``pad_id`` elsewhere."""
    b, k, t = codes.shape
    out = codes.new_full((b, k, t + k - 1), pad_id)
    for q in range(k):
        out[:, q, q:q + t] = codes[:, q]
    return out


def undo_delay(delayed: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`apply_delay`: (B, K, S) -> (B, K, S - K + 1), frames complete in
    every codebook only."""
    b, k, s = delayed.shape
    t = s - k + 1
    if t < 0:
        raise ValueError(f"{s} delayed steps hold no complete frame of {k} codebooks")
    return torch.stack([delayed[:, q, q:q + t] for q in range(k)], dim=1)


@dataclass
class CodecConfig(DictConfig):
    sample_rate: int = 16_000
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])  # width before each downsampling
    strides: list[int] = field(default_factory=lambda: [4, 4, 4, 5])  # hop = product (320: 50 frames/s)
    latent_dim: int = 64
    n_codebooks: int = 4
    codebook_size: int = 256
    ema_decay: float = 0.99
    beta: float = 0.25  # commitment weight
    activation: str = "elu"  # "elu" (SoundStream / EnCodec) or "snake" (BigVGAN / DAC)

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if len(self.channels) != len(self.strides):
            raise ValueError("channels and strides need one entry per stage")

    @property
    def hop(self) -> int:
        return math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop


class Snake(nn.Module):
    """x + sin(a x)^2 / a with a learned frequency ``a`` per channel (Ziyin et al. 2020; the
    activation of BigVGAN and DAC): a periodic bias that lets a decoder draw a pure tone
    without building it out of piecewise-smooth pieces."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.sin(self.alpha * x).pow(2) / (self.alpha + 1e-9)


ACTIVATIONS = ("elu", "snake")


def activation(cfg: CodecConfig, ch: int) -> nn.Module:
    """The codec's nonlinearity for ``ch`` channels."""
    return Snake(ch) if cfg.activation == "snake" else nn.ELU()


class ResUnit(nn.Module):
    def __init__(self, cfg: CodecConfig, ch: int, dilation: int) -> None:
        super().__init__()
        self.act1, self.act2 = activation(cfg, ch), activation(cfg, ch)
        self.conv1 = nn.Conv1d(ch, ch, 7, padding=3 * dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act2(self.conv1(self.act1(x))))


class Encoder(nn.Module):
    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        chs = cfg.channels
        layers: list[nn.Module] = [nn.Conv1d(1, chs[0], 7, padding=3)]
        for i, s in enumerate(cfg.strides):
            out = chs[i + 1] if i + 1 < len(chs) else chs[i] * 2
            layers += [ResUnit(cfg, chs[i], 1), ResUnit(cfg, chs[i], 3), activation(cfg, chs[i]),
                       nn.Conv1d(chs[i], out, 2 * s, stride=s, padding=math.ceil(s / 2))]
        layers += [activation(cfg, out), nn.Conv1d(out, cfg.latent_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 1, T) -> (B, D, T / hop)


class Decoder(nn.Module):
    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        chs = cfg.channels
        top = chs[-1] * 2
        layers: list[nn.Module] = [nn.Conv1d(cfg.latent_dim, top, 7, padding=3)]
        widths = [top, *reversed(chs)]
        for i, s in enumerate(reversed(cfg.strides)):
            layers += [activation(cfg, widths[i]),
                       nn.ConvTranspose1d(widths[i], widths[i + 1], 2 * s, stride=s, padding=math.ceil(s / 2),
                                          output_padding=s % 2),
                       ResUnit(cfg, widths[i + 1], 1), ResUnit(cfg, widths[i + 1], 3)]
        layers += [activation(cfg, widths[-1]), nn.Conv1d(widths[-1], 1, 7, padding=3)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # (B, D, F) -> (B, 1, F * hop)


class ResidualVQ(nn.Module):
    """``n_codebooks`` quantisers in sequence, each coding the residual of the ones before."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        k, d = cfg.n_codebooks, cfg.latent_dim
        self.register_buffer("codebooks", torch.randn(k, cfg.codebook_size, d) * 0.1)  # (K, N, D)
        self.register_buffer("ema_count", torch.ones(k, cfg.codebook_size), persistent=False)
        self.register_buffer("ema_sum", self.codebooks.clone(), persistent=False)
        self.register_buffer("usage", torch.zeros(k, cfg.codebook_size), persistent=False)
        self._recent: list[torch.Tensor | None] = [None] * k

    def _nearest(self, q: int, flat: torch.Tensor) -> torch.Tensor:
        e = self.codebooks[q]  # (N, D)
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None]
        return d.argmin(1)

    def quantize(self, z: torch.Tensor, n_q: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, D, F) -> (z_hat (B, D, F), codes (B, K, F)) with the first ``n_q`` codebooks."""
        b, d, f = z.shape
        flat = z.permute(0, 2, 1).reshape(-1, d)  # (B*F, D)
        rest, out, codes = flat, torch.zeros_like(flat), []
        for q in range(n_q or self.cfg.n_codebooks):
            idx = self._nearest(q, rest)
            picked = self.codebooks[q][idx]
            if self.training:
                self._ema(q, idx, rest.detach())
            out = out + picked
            rest = rest - picked
            codes.append(idx.view(b, f))
        return out.view(b, f, d).permute(0, 2, 1), torch.stack(codes, 1)

    @torch.no_grad()
    def _ema(self, q: int, idx: torch.Tensor, feats: torch.Tensor) -> None:
        n, dec = self.cfg.codebook_size, self.cfg.ema_decay
        counts = torch.bincount(idx, minlength=n).to(feats.dtype)
        sums = torch.zeros(n, feats.shape[1], dtype=feats.dtype).index_add_(0, idx, feats)
        self.ema_count[q].mul_(dec).add_(counts, alpha=1 - dec)
        self.ema_sum[q].mul_(dec).add_(sums, alpha=1 - dec)
        total = self.ema_count[q].sum()
        smoothed = (self.ema_count[q] + 1e-5) / (total + n * 1e-5) * total
        self.codebooks[q].copy_(self.ema_sum[q] / smoothed[:, None])
        self.usage[q] += counts
        self._recent[q] = feats

    @torch.no_grad()
    def restart_dead_codes(self, gen: torch.Generator | None = None) -> int:
        """Move codes unused since the last call onto recent residuals; returns how many moved."""
        moved = 0
        for q in range(self.cfg.n_codebooks):
            dead = (self.usage[q] == 0).nonzero().flatten()
            recent = self._recent[q]
            if len(dead) and recent is not None:
                pick = torch.randint(0, recent.shape[0], (len(dead),), generator=gen)
                self.codebooks[q, dead] = recent[pick]
                self.ema_sum[q, dead] = recent[pick]
                self.ema_count[q, dead] = 1.0
                moved += len(dead)
        self.usage.zero_()
        return moved

    @torch.no_grad()
    def init_from(self, z: torch.Tensor, gen: torch.Generator | None = None) -> None:
        """Seed every codebook with residuals of encoder features z (B, D, F), stage by stage
        (codebooks initialised from data instead of noise: the quantiser starts where the
        features are, rather than collapsing them onto a few random codes)."""
        flat = z.permute(0, 2, 1).reshape(-1, z.shape[1])
        n = self.cfg.codebook_size
        for q in range(self.cfg.n_codebooks):
            pick = torch.randint(0, flat.shape[0], (n,), generator=gen)
            self.codebooks[q] = flat[pick]
            self.ema_sum[q] = flat[pick]
            self.ema_count[q] = 1.0
            flat = flat - self.codebooks[q][self._nearest(q, flat)]
        self.usage.zero_()

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, K, F) -> z_hat (B, D, F)."""
        z = sum(self.codebooks[q][codes[:, q]] for q in range(codes.shape[1]))  # (B, F, D)
        return z.permute(0, 2, 1)


class AudioCodec(FreezableCodes):
    """Mono waveforms (B, T) at ``sample_rate`` <-> codes (B, K, ceil(T / hop))."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = ResidualVQ(cfg)
        self.decoder = Decoder(cfg)

    def _pad(self, wav: torch.Tensor) -> torch.Tensor:
        hop = self.cfg.hop
        return F.pad(wav, (0, (-wav.shape[-1]) % hop))

    def forward(self, wav: torch.Tensor, n_q: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction (B, T'), commitment loss), straight-through quantiser;
        ``n_q=0`` bypasses the quantiser."""
        z = self.encoder(self._pad(wav)[:, None])  # (B, D, F)
        if n_q == 0:  # a plain autoencoder (the warm-up before the quantiser starts)
            return self.decoder(z)[:, 0], z.new_zeros(())
        z_hat, _ = self.quantizer.quantize(z, n_q)
        commit = self.cfg.beta * F.mse_loss(z, z_hat.detach())
        z_st = z + (z_hat - z).detach()
        return self.decoder(z_st)[:, 0], commit

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """wav (B, T) -> codes (B, K, ceil(T / hop))."""
        return self.quantizer.quantize(self.encoder(self._pad(wav)[:, None]))[1]

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, K, F) -> wav (B, F * hop)."""
        return self.decoder(self.quantizer.dequantize(codes))[:, 0]


def save_codec_dir(out, model: AudioCodec, extra: dict | None = None, dtype: torch.dtype = torch.float32) -> None:
    """model.safetensors + config.json ({"modality": "audio-codec", "codec": {...}}) in ``out``."""
    from argen.checkpoints.argen_format import save_folder

    save_folder(out, model.state_dict(), {"modality": "audio-codec", "codec": model.cfg.to_dict(), **(extra or {})}, dtype)


def load_codec_dir(path) -> tuple[AudioCodec, dict]:
    """Load a audio codec folder (eval mode, CPU, float32) and its config.json."""
    from argen.checkpoints.argen_format import load_folder

    return load_folder(path, "codec", CodecConfig, AudioCodec, "audio codec")
