"""How an image model lays out its sequence: a caption prefix, a start token, then image tokens.

Token ids: ``[0, K)`` image codes, ``K`` the start token (BOS), then the caption words, PAD
and NULL (the unconditional caption, for classifier-free guidance). A sequence is::

    [caption: prefix_len word ids, PAD-filled][BOS][inputs ...]

and the outputs at BOS and after predict the L image tokens. For raster (next-token) models
the inputs are the image tokens shifted by one (LlamaGen). For next-scale models the inputs
of scale k+1 are scale k's codes, nearest-upsampled to scale k+1's grid, or, with
``feature_dim``, VAR's input: the tokenizer's running feature map after scale k,
area-downsampled to scale k+1's grid (see ``MultiScaleQuantizer.next_input``). Blocks are
bidirectional inside a scale and causal across scales (VAR's block-wise causal mask).

With ``raster_scales`` = r > 1, the first r scales are not sampled in parallel but token by
token, coarse to fine and in raster order inside each scale, like a next-token model: their
inputs are BOS and those tokens shifted by one, and each of their tokens is a block of its own.
Scale r reads scale r-1's upsampled codes as before. 0 and 1 both mean plain VAR (a 1x1 scale
is one token either way).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from argen.engine.config import DictConfig
from argen.engine.word_prefix import word_prefix_ids


@dataclass
class ImageLayout(DictConfig):
    words: list[str]
    codebook_size: int
    scales: list[int]  # [8]: raster next-token; [1, 2, 4, 8]: next-scale
    prefix_len: int = 12
    dataset: str | None = None  # "shapes": captions follow argen.modalities.image.shapes_grammar
    # next-scale only: > 0 means scale k+1 reads the tokenizer's running feature map f_hat (VAR's
    # input, feature_dim = its latent width) instead of scale k's upsampled codes
    feature_dim: int = 0
    # next-scale only: how many of the coarsest scales are sampled token by token (see above)
    raster_scales: int = 0

    def __post_init__(self) -> None:
        if self.raster_scales and not 0 <= self.raster_scales < len(self.scales):
            raise ValueError(f"raster_scales {self.raster_scales} must be below the number of scales "
                             f"({len(self.scales)})")
        if self.raster_scales > 1 and self.feature_dim:
            raise ValueError("raster_scales and feature inputs cannot be combined")

    @property
    def next_scale(self) -> bool:
        return len(self.scales) > 1

    @property
    def sampler(self) -> str:
        return "next-scale" if self.next_scale else "next-token"

    @property
    def bos(self) -> int:
        return self.codebook_size

    @property
    def pad(self) -> int:
        return self.codebook_size + 1 + len(self.words)

    @property
    def null(self) -> int:
        return self.pad + 1

    @property
    def vocab_size(self) -> int:
        return self.null + 1

    @property
    def num_tokens(self) -> int:
        return sum(s * s for s in self.scales)

    @property
    def first_parallel(self) -> int:
        """Index of the first scale sampled in parallel (0 for plain VAR)."""
        return self.raster_scales if self.raster_scales > 1 else 0

    @property
    def num_raster(self) -> int:
        """Image tokens sampled one at a time before the parallel scales (0 for plain VAR)."""
        return sum(s * s for s in self.scales[:self.first_parallel])

    @property
    def seq_len(self) -> int:
        return self.prefix_len + self.num_tokens

    def transformer_fields(self) -> dict:
        """The backbone settings this layout implies."""
        sizes = [1] * self.num_raster + [s * s for s in self.scales[self.first_parallel:]]
        blocks = {"block_sizes": sizes} if self.next_scale else {}
        feats = {"feature_dim": self.feature_dim} if self.feature_dim else {}
        return {"vocab_size": self.vocab_size, "max_seq_len": self.seq_len, "prefix_len": self.prefix_len,
                **blocks, **feats}


    def caption_ids(self, text: str) -> list[int]:
        """The caption's prefix ids (prefix_len); unknown words are a UsageError listing the vocabulary."""
        return word_prefix_ids(text, self.words, self.codebook_size + 1, self.prefix_len, self.pad, "a red circle in the top left")

    def null_ids(self) -> list[int]:
        return [self.null] * self.prefix_len

    def upsample(self, k: int, grid: torch.Tensor) -> torch.Tensor:
        """Scale k's codes (B, s, s) nearest-upsampled to scale k+1: input ids (B, s'^2)."""
        s, nxt = self.scales[k], self.scales[k + 1]
        src = torch.arange(nxt, device=grid.device) * s // nxt
        return grid[:, src][:, :, src].flatten(1)

    def inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing inputs (B, L) for image tokens (B, L): BOS, then the shifted tokens
        (raster) or each scale's upsampled codes (next-scale). ``tokens`` may also stop after the
        token-by-token part (L = ``num_raster``): its inputs are then BOS and the shifted tokens.
        Feature models (``feature_dim``) read BOS, then the tokenizer's ``scale_inputs``, which
        this layout cannot build."""
        if self.feature_dim:
            raise ValueError("a feature model's scale inputs come from its tokenizer (ImageTokenizer.scale_inputs)")
        bos = torch.full_like(tokens[:, :1], self.bos)
        if not self.next_scale or tokens.shape[1] == self.num_raster:
            return torch.cat([bos, tokens[:, :-1]], dim=1)
        grids = [chunk.view(-1, s, s) for chunk, s in zip(self.split(tokens), self.scales)]
        shifted = [tokens[:, :self.num_raster - 1]] if self.num_raster else []  # the raster part after BOS
        ups = range(max(0, self.first_parallel - 1), len(grids) - 1)  # scales whose upsampled codes are inputs
        return torch.cat([bos, *shifted] + [self.upsample(k, grids[k]) for k in ups], dim=1)

    def split(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Flat image tokens (B, L) -> each scale's part, coarse first: [(B, s*s), ...]."""
        return list(torch.split(tokens, [s * s for s in self.scales], dim=1))
