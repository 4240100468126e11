"""The convolutional pieces shared by the VQGAN-style image tokenizers of the public checkpoints
(VAR's VQVAE, LlamaGen's VQ-16): both releases use the same residual block, resamplers and
GroupNorm (eps 1e-6) under the same parameter names (norm1, conv1, norm2, conv2,
nin_shortcut; conv), so one definition loads both strictly."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(ch: int, groups: int = 32) -> nn.GroupNorm:
    return nn.GroupNorm(groups, ch, eps=1e-6, affine=True)


def swish(x: torch.Tensor) -> torch.Tensor:
    """``x * sigmoid(x)`` in two roundings, as LlamaGen's ``nonlinearity`` computes it (``F.silu``,
    which VAR uses, rounds once and so differs in the last bit)."""
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    """(B, c_in, H, W) -> (B, c_out, H, W): two norm-SiLU-conv steps plus a (1x1 when the width
    changes) shortcut. ``act`` is the SiLU as the checkpoint's own code computes it."""

    def __init__(self, c_in: int, c_out: int, groups: int = 32,
                 act: Callable[[torch.Tensor], torch.Tensor] = F.silu) -> None:
        super().__init__()
        self.act = act
        self.norm1 = group_norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = group_norm(c_out, groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        return self.nin_shortcut(x) + h


class Downsample(nn.Module):
    """(B, C, H, W) -> (B, C, H/2, W/2) by a stride-2 conv."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # pad right and bottom only, as both references do


class Upsample(nn.Module):
    """(B, C, H, W) -> (B, C, 2H, 2W): nearest-neighbour, then a conv."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
