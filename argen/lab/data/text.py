"""Text corpora for training and evaluation (nanoGPT's split: first 90% train, last 10% val)."""

from __future__ import annotations

from pathlib import Path

import torch


def read_corpus(path: str | Path) -> str:
    """The text of a UTF-8 corpus file (a folder, a missing file or other bytes: one-line errors)."""
    from argen.io.files import read_utf8

    return read_utf8(path, "text corpus", hint="pass the path of a UTF-8 text file")


def split_corpus(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """First ``1 - val_fraction`` of the characters for training, the rest for validation."""
    n = int(len(text) * (1 - val_fraction))
    return text[:n], text[n:]


class TokenStream:
    """A long 1-D tensor of token ids, cut into training windows at random offsets."""

    def __init__(self, ids: list[int] | torch.Tensor) -> None:
        self.ids = torch.as_tensor(ids, dtype=torch.long)  # (N,)

    def __len__(self) -> int:
        return self.ids.numel()

    def batch(self, batch_size: int, seq_len: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-token targets, each (B, T), from random windows."""
        starts = torch.randint(len(self) - seq_len - 1, (batch_size,), generator=gen)
        offs = starts[:, None] + torch.arange(seq_len + 1)  # (B, T + 1)
        w = self.ids[offs]
        return w[:, :-1], w[:, 1:]

    def windows(self, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Every non-overlapping window, in order: inputs and targets (W, T) for a full-coverage loss."""
        n = (len(self) - 1) // seq_len
        x = self.ids[: n * seq_len].view(n, seq_len)
        y = self.ids[1 : n * seq_len + 1].view(n, seq_len)
        return x, y
