"""Caption words for the video model: the bouncing grammar's words, one id each (0 pads)."""

from __future__ import annotations

import torch

from argen.modalities.image.shapes_grammar import COLORS
from argen.modalities.video import grammar as bouncing


class CaptionVocab:
    def __init__(self, words: list[str] | None = None, length: int = 12) -> None:
        self.words = words or ["<pad>", "a", "and", ",", *COLORS, *bouncing.SHAPES]
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.length = length

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, caption: str | None) -> list[int]:
        """A caption (checked against the grammar) -> ``length`` ids; None or "" -> all padding
        (the unconditional prompt)."""
        if not caption or not caption.strip():
            return [0] * self.length
        bouncing.parse_caption(caption)
        ids = [self.ids[w] for w in caption.lower().replace(",", " , ").split()]
        return ids + [0] * (self.length - len(ids))

    def encode_batch(self, captions: list[str | None]) -> torch.Tensor:
        return torch.tensor([self.encode(c) for c in captions], dtype=torch.long)  # (B, length)
