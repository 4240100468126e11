"""MusicGen's delay pattern: codes (K, F) <-> the decoder's steps (S, K), one token per stream.

Step 0 is BOS (PAD in every stream); at step s >= 1 stream q holds frame ``s - 1 - delay[q]``,
PAD before its first frame and after its last. This is transformers'
``MusicgenForCausalLM.build_delay_pattern_mask`` (decoder input = BOS then the delayed codes;
stereo streams 2q and 2q + 1 share delay q) and audiocraft's ``DelayedPatternProvider``
(``audiocraft/modules/codebooks_patterns.py``). F frames take ``1 + F + max(delay)`` steps,
so a generation of F frames is ``F + max(delay)`` decoding steps after BOS.
"""

from __future__ import annotations

import torch


def grid(known: torch.Tensor, frames: int, delays: list[int], pad: int) -> torch.Tensor:
    """The full step grid (S, K) of a sequence of ``frames`` frames whose first ``known.shape[1]``
    are given (``known`` (K, F0)): codes where known, PAD where the pattern is empty, -1 where
    the model samples."""
    k, f0 = known.shape
    if f0 > frames:
        raise ValueError(f"{f0} known frames exceed the {frames} to generate")
    steps = 1 + frames + max(delays)
    out = torch.full((steps, k), pad, dtype=torch.long)
    codes = torch.full((k, frames), -1, dtype=torch.long)
    codes[:, :f0] = known
    for q, d in enumerate(delays):
        out[1 + d:1 + d + frames, q] = codes[q]
    return out


def split(full: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A step grid (S, K) -> (the prompt: the steps before the first one with a sampled slot
    (P, K); the rest (S - P, K), -1 where sampled, the fixed tokens elsewhere: ``forced``)."""
    open_ = (full < 0).any(dim=1)
    first = int(open_.nonzero()[0]) if bool(open_.any()) else full.shape[0]
    return full[:first], full[first:]


def codes_from_steps(steps: torch.Tensor, delays: list[int]) -> torch.Tensor:
    """The inverse of :func:`grid`: steps (S, K) with BOS first -> codes (K, S - 1 - max(delay))."""
    frames = steps.shape[0] - 1 - max(delays)
    return torch.stack([steps[1 + d:1 + d + frames, q] for q, d in enumerate(delays)])
