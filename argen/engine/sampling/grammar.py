"""Grammars for the next-token loop: a batch of per-row states, each fed the tokens its row
gained since the previous step and asked which ids may come next.

A row state has ``feed(token)`` and ``allowed() -> (V,) bool``; :class:`RowGrammars` is the
``allowed(step, outputs) -> (B, V) bool`` callable that :func:`~argen.engine.sampling.next_token.generate`
takes, for any grammar (mesh serialisations, OBJ text, ...)."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class RowState(Protocol):
    def feed(self, token: int) -> None: ...
    def allowed(self) -> np.ndarray: ...


class RowGrammars:
    """One state per row; each call advances every row by its new tokens and stacks their masks."""

    def __init__(self, rows: list[RowState]) -> None:
        self.rows = rows
        self.seen = [0] * len(rows)

    def __call__(self, step: int, outputs: list[list[int]]) -> torch.Tensor:
        masks = []
        for r, (row, out) in enumerate(zip(self.rows, outputs)):
            for t in out[self.seen[r]:]:
                row.feed(t)
            self.seen[r] = len(out)
            masks.append(row.allowed())
        return torch.from_numpy(np.stack(masks))
