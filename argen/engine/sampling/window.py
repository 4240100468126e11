"""Context windows: what a loop keeps of the past when it runs longer than a model's context.

:class:`ContextWindow` is the next-token loop's: a RoPE model *slides* (the oldest quarter of the
cache is evicted and the kept keys re-indexed in place); a model with learned absolute positions
*crops* as nanoGPT does (each step reads the last ``size`` tokens at positions 0..size-1, so every
step past the window recomputes it). :class:`BlockWindow` is the block-diffusion loop's cache of
whole blocks: the prompt, ``sink`` first blocks and the latest ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from argen.engine.kv_cache import KVCache
from argen.engine.sampling.step import left_pad


@dataclass(frozen=True)
class ContextWindow:
    size: int  # tokens a row may attend to (the model's context)
    crop: bool = False  # learned absolute positions: nanoGPT's crop instead of sliding

    def slide(self, cache: KVCache, rope) -> torch.Tensor:
        """Evict the oldest quarter of a full cache; returns each row's position shift (B,)."""
        return cache.evict(max(1, self.size // 4), 0, rope)

    def cropped_logits(self, model, prompts: list[list[int]], outputs: list[list[int]], rows: list[int],
                       pad_id: int = 0) -> torch.Tensor:
        """Next-token logits (R, V) of each row in ``rows`` from its last ``size`` tokens read at
        positions 0.. (nanoGPT's ``idx[:, -block_size:]``), without a cache: with learned positions
        every key changes when the window moves, so no cache entry survives a crop."""
        device = model.embed.weight.device
        idx, pos = left_pad([(prompts[r] + outputs[r])[-self.size:] for r in rows], pad_id)  # (R, <=size)
        return model(idx.to(device), pos=pos.to(device), num_logits=1)[:, -1]


class BlockWindow:
    """The KV cache of a block-diffusion loop as a window of whole blocks of ``block`` tokens
    after a ``prompt_len`` prefix: ``sink`` first blocks stay, and when the next block needs room
    the oldest other block is evicted (keys re-indexed, so positions stay contiguous). ``slot`` is
    the block index the next block takes."""

    def __init__(self, cache: KVCache | None, prompt_len: int, block: int, blocks: int, sink: int, rope) -> None:
        if sink >= blocks:
            raise ValueError(f"{sink} sink blocks must leave room in a window of {blocks}")
        self.cache, self.prompt_len, self.block, self.blocks, self.sink, self.rope = cache, prompt_len, block, blocks, sink, rope
        self.slot = 0

    def make_room(self) -> None:
        """Evict the oldest non-sink block if the next one would not fit."""
        c = self.cache
        if c is not None and c.length + self.block > c.capacity:
            c.evict(self.block, self.prompt_len + self.sink * self.block, self.rope)
            self.slot -= 1

    def visible(self, history: list[torch.Tensor]) -> list[torch.Tensor]:
        """Which of the committed blocks the window holds: the sink blocks and the latest ones."""
        if len(history) <= self.blocks:
            return history
        return history[:self.sink] + history[len(history) - (self.blocks - self.sink):]
