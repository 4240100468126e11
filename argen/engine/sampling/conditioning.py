"""What a model reads besides its tokens, for every row of a generation: an encoder's memory
(cross-attention keys and values, computed once: :meth:`Transformer.memory`) and prefix vectors
placed before each row's prompt. The loops pass it through to every forward pass; it is not one
modality's (MusicGen's text memory and melody prefix are its first users).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from argen.engine.cross_attention import Memory


@dataclass
class Conditioning:
    """``memory``: cross-attention memory, one row per sequence of the batch (with guidance: the
    prompts' rows, then their unconditional twins'). ``prefix`` = (vectors (R, P, C), positions
    (R, P)), left-padded with position -1: every row's vectors come before its prompt, whose
    positions continue after its own prefix, so a row's result does not depend on the others'."""

    memory: Memory | None = None
    prefix: tuple[torch.Tensor, torch.Tensor] | None = None

    def check(self, rows: int, window: object | None, compact: bool) -> None:
        """Refuse what the loops cannot do with it: a batch of another size, a sliding or
        cropping window (the prefix would slide out; a crop re-reads tokens only), compaction."""
        for what, n in (("memory", None if self.memory is None else self.memory.batch),
                        ("prefix", None if self.prefix is None else self.prefix[0].shape[0])):
            if n is not None and n != rows:
                raise ValueError(f"the conditioning {what} has {n} rows for a batch of {rows}")
        if window is not None and self.prefix is not None:
            raise ValueError("a window cannot slide past conditioning prefix vectors")
        if window is not None and getattr(window, "crop", False):
            raise ValueError("a cropping window re-reads tokens only, not conditioning")
        if compact:
            raise ValueError("compact is for unconditioned sampling")

    @property
    def prefix_len(self) -> int:
        return 0 if self.prefix is None else self.prefix[0].shape[1]

    def prompt_positions(self, pos: torch.Tensor) -> torch.Tensor:
        """Prompt positions (B, L), -1 on padding -> the same after each row's prefix."""
        if self.prefix is None:
            return pos
        ppos = self.prefix[1].to(pos.device)
        return torch.where(pos >= 0, pos + ppos.max(dim=1, keepdim=True).values + 1, pos)

    def with_prefix(self, pos: torch.Tensor) -> torch.Tensor:
        """Positions of a pass that reads the prefix: the prefix's, then ``pos`` (B, P + L)."""
        return pos if self.prefix is None else torch.cat([self.prefix[1].to(pos.device), pos], dim=1)

    def inputs(self, first: bool, device: torch.device) -> dict:
        """The model's keywords for a pass: the memory always; the prefix vectors on a pass that
        starts from position 0 (the prefill, or every uncached pass)."""
        out: dict = {} if self.memory is None else {"memory": self.memory}
        if first and self.prefix is not None:
            out["prefix"] = self.prefix[0].to(device)
        return out
