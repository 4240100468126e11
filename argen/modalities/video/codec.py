"""The frame codec for video: diffusers' ``AutoencoderKL`` with a small config, applied to
each frame; continuous latents, normalised by a per-channel mean and scale measured on the
training frames (the role of Stable Diffusion's ``scaling_factor``).

diffusers is imported only when a codec is built (it takes seconds to import).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from argen.engine.config import DictConfig


@dataclass
class FrameCodecConfig(DictConfig):
    image_size: int = 32
    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 64])  # one downsampling between each
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 16
    kl_weight: float = 1e-6
    latent_mean: list[float] = field(default_factory=lambda: [0.0] * 4)  # measured after training
    latent_std: list[float] = field(default_factory=lambda: [1.0] * 4)

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.block_out_channels) - 1)


def to_unit(frames) -> torch.Tensor:
    """uint8 frames (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
    x = torch.as_tensor(frames).float() / 127.5 - 1
    return x.movedim(-1, -3)


def to_uint8(x: torch.Tensor):
    """float (..., 3, H, W) in [-1, 1] -> uint8 numpy (..., H, W, 3)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().movedim(-3, -1).cpu().numpy()


class FrameCodec(nn.Module):
    """Frames (B, F, 3, H, W) in [-1, 1] <-> normalised latents (B, F, C, h, w)."""

    def __init__(self, cfg: FrameCodecConfig) -> None:
        super().__init__()
        from diffusers import AutoencoderKL

        self.cfg = cfg
        n = len(cfg.block_out_channels)
        self.vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                                 up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(cfg.block_out_channels),
                                 layers_per_block=cfg.layers_per_block, latent_channels=cfg.latent_channels,
                                 norm_num_groups=cfg.norm_num_groups, sample_size=cfg.image_size)
        self.register_buffer("mean", torch.tensor(cfg.latent_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.latent_std).view(1, -1, 1, 1), persistent=False)

    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.cfg.latent_mean, self.cfg.latent_std = mean.tolist(), std.tolist()
        self.mean.copy_(mean.view(1, -1, 1, 1))
        self.std.copy_(std.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass on frames (N, 3, H, W): (reconstruction, KL term weighted by kl_weight)."""
        post = self.vae.encode(x).latent_dist
        z = post.sample(generator=gen)
        return self.vae.decode(z).sample, self.cfg.kl_weight * post.kl().mean()

    @torch.no_grad()
    def raw_latents(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> the posterior means (N, C, h, w), unnormalised."""
        return self.vae.encode(x).latent_dist.mean

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, F, 3, H, W) -> normalised latents (B, F, C, h, w) (posterior means: deterministic)."""
        b, f = frames.shape[:2]
        z = (self.raw_latents(frames.flatten(0, 1)) - self.mean) / self.std
        return z.view(b, f, *z.shape[1:])

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, F, C, h, w) -> frames (B, F, 3, H, W) in [-1, 1]."""
        b, f = latents.shape[:2]
        x = self.vae.decode(latents.flatten(0, 1) * self.std + self.mean).sample
        return x.view(b, f, *x.shape[1:])


def save_codec_dir(out, model: FrameCodec, extra: dict | None = None, dtype: torch.dtype = torch.float32) -> None:
    from argen.checkpoints.argen_format import save_folder

    save_folder(out, model.state_dict(), {"modality": "video-codec", "codec": model.cfg.to_dict(), **(extra or {})}, dtype)


def load_codec_dir(path) -> tuple[FrameCodec, dict]:
    """Load a frame codec folder (eval mode, CPU, float32) and its config.json."""
    from argen.checkpoints.argen_format import load_folder

    return load_folder(path, "codec", FrameCodecConfig, FrameCodec, "frame codec")
