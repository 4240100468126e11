"""LlamaGen's text-to-image GPT on argen's engine: 120 caption vectors, through the caption MLP,
are the first 120 positions of the sequence; image tokens follow.

The caption's padding is the reference's attention mask (``generate.py`` multiplies the causal
mask's caption columns by the caption mask, for the guided twins too): here a padded caption slot
gets position -1, which argen's masks already make unreadable, so the next-token loop and the KV
cache run unchanged. :class:`CaptionedGPT` binds one batch's caption vectors to the model for one
call of :func:`argen.engine.sampling.next_token.generate`: each row's prompt is the ids
``vocab_size + j`` (j < 120), standing for that row's caption vector j.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from argen.engine.kv_cache import KVCache
from argen.engine.transformer import Transformer
from argen.modalities.image.llamagen_t2i.config import T2IConfig


class CaptionMLP(nn.Module):
    """gpt.py's ``MLP``: fc1, tanh-GELU, fc2, no biases; (..., caption_dim) -> (..., dim)."""

    def __init__(self, caption_dim: int, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(caption_dim, dim, bias=False)
        self.fc2 = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class LlamaGenT2I(nn.Module):
    """The GPT (argen's :class:`Transformer`), the caption MLP and the null caption."""

    def __init__(self, cfg: T2IConfig) -> None:
        super().__init__()
        self.t2i = cfg
        self.gpt = Transformer(cfg.transformer())
        self.cap_proj = CaptionMLP(cfg.caption_dim, self.gpt.cfg.d_model)
        self.register_buffer("uncond_embedding", torch.zeros(cfg.caption_tokens, cfg.caption_dim))

    def prefix(self, captions: torch.Tensor) -> torch.Tensor:
        """Caption vectors (B, 120, caption_dim) -> the GPT's first 120 inputs (B, 120, dim)."""
        w = self.cap_proj.fc1.weight
        return self.cap_proj(captions.to(w.device, w.dtype))

    def bind(self, captions: torch.Tensor, valid: torch.Tensor) -> "CaptionedGPT":
        """A view of the model for one batch: ``captions`` (R, 120, caption_dim) and ``valid``
        (R, 120) bool (False on padding), one row per row of the generation batch."""
        return CaptionedGPT(self, self.prefix(captions), valid.to(self.gpt.embed.weight.device).bool())


class CaptionedGPT:
    """Duck-types the parts of :class:`Transformer` the next-token loop reads. Ids below
    ``vocab_size`` are image tokens; id ``vocab_size + j`` is the row's caption vector ``j``."""

    def __init__(self, model: LlamaGenT2I, prefix: torch.Tensor, valid: torch.Tensor) -> None:
        self.model, self.gpt = model, model.gpt
        self.prefix, self.valid = prefix, valid  # (R, 120, dim), (R, 120)
        self.cfg, self.embed = model.gpt.cfg, model.gpt.embed

    def prompts(self) -> list[list[int]]:
        """The prompt ids of every row (the same ids: each row reads its own caption)."""
        v = self.cfg.vocab_size
        return [[v + j for j in range(self.prefix.shape[1])] for _ in range(self.prefix.shape[0])]

    def new_cache(self, batch: int, capacity: int | None = None, dtype: torch.dtype | None = None) -> KVCache:
        return self.gpt.new_cache(batch, capacity, dtype)

    def rope(self, pos: torch.Tensor, dtype: torch.dtype):
        return self.gpt.rope(pos, dtype)

    def __call__(self, idx: torch.Tensor, pos: torch.Tensor | None = None, cache: KVCache | None = None,
                 num_logits: int | None = None) -> torch.Tensor:
        """ids (R, T), positions (R, T) -> logits (R, N, vocab_size)."""
        v = self.cfg.vocab_size
        r = idx.shape[0]
        if r != self.prefix.shape[0]:
            raise ValueError(f"bound to {self.prefix.shape[0]} rows, called with {r}")
        if pos is None:
            start = cache.length if cache is not None else 0
            pos = torch.arange(start, start + idx.shape[1], device=idx.device).expand(r, -1)
        is_cap = idx >= v  # (R, T)
        slot = (idx - v).clamp(min=0, max=self.prefix.shape[1] - 1)
        rows = torch.arange(r, device=idx.device)[:, None]
        h = torch.where(is_cap[..., None], self.prefix[rows, slot], self.embed(idx.clamp(max=v - 1)))  # (R, T, dim)
        pos = pos.masked_fill(is_cap & ~self.valid[rows, slot], -1)  # padded caption slots: unreadable
        return self.gpt(None, pos=pos, cache=cache, num_logits=num_logits, embeds=h)
