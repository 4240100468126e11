"""A static key/value cache: allocated once, written in place, rolled back or slid cheaply."""

from __future__ import annotations

from collections.abc import Callable

import torch

from argen.engine.rope import apply_rope


class KVCache:
    """Keys and values of every layer for a batch of sequences.

    ``k[l]``/``v[l]``: (B, n_kv_head, capacity, head_dim). Keys are stored after RoPE.
    ``pos``: (B, capacity) position of the token in each slot, -1 for an empty or padded slot;
    attention masks are built from it, so left padding and rollbacks need no extra state.
    ``length``: slots in use (the same for every row; rows are left-padded).
    """

    def __init__(self, n_layer: int, batch: int, n_kv_head: int, capacity: int, head_dim: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        shape = (batch, n_kv_head, capacity, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.pos = torch.full((batch, capacity), -1, device=device, dtype=torch.long)
        self.length = 0
        self.capacity = capacity
        # True: attention reads the whole buffer (static shapes, for torch.compile); False: only
        # the used prefix (faster in eager mode).
        self.static = False
        self.padded = False  # whether any used slot holds padding (then every step needs a mask)
        # graph mode (see use_slot_tensor): the next slot as a (1,) device tensor, so a captured
        # decode step writes where this tensor says instead of at a Python int baked into the graph.
        # ``slot`` is set only while such a step runs (advance_slot .. end_slot); other passes on a
        # cache in graph mode (a drafter's multi-token feed) claim slots by range as usual
        self.slot_buffer: torch.Tensor | None = None
        self.slot: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return self.pos.shape[0]

    @property
    def graph_mode(self) -> bool:
        return self.slot_buffer is not None

    def use_slot_tensor(self) -> None:
        """Switch to graph mode for single-token decode steps: static reads (the whole buffer,
        masked by ``pos``), writes at the slot in ``self.slot``, and the buffers marked as static
        addresses, so that torch.compile's CUDA graphs may update them in place (gpt-fast keeps its
        cache in module buffers for the same reason: pytorch-labs/gpt-fast ``model.py`` KVCache,
        ``generate.py`` ``torch.compile(decode_one_token, mode="reduce-overhead")``). The caller
        sets the slot and advances ``length`` outside the captured step (:func:`advance_slot`)."""
        self.static = True
        self.slot_buffer = torch.zeros(1, dtype=torch.long, device=self.pos.device)
        mark_static(*self.k, *self.v, self.pos, self.slot_buffer)

    def advance_slot(self) -> None:
        """Graph mode, before a step: check room for one token, point ``slot`` at it, count it."""
        if self.length + 1 > self.capacity:
            raise RuntimeError(f"KV cache full: {self.length} + 1 tokens > capacity {self.capacity}")
        self.slot_buffer.fill_(self.length)
        self.slot = self.slot_buffer
        self.length += 1

    def end_slot(self) -> None:
        """Graph mode, after a step: later passes of several tokens claim slots by range again."""
        self.slot = None

    def reserve(self, pos: torch.Tensor) -> slice | torch.Tensor:
        """Claim slots for T new tokens at positions ``pos`` (B, T); returns their slot range
        (in graph mode the slot tensor that :meth:`advance_slot` set, for one token)."""
        if self.slot is not None:
            self.pos.index_copy_(1, self.slot, pos)
            return self.slot
        t = pos.shape[1]
        if self.length + t > self.capacity:
            raise RuntimeError(f"KV cache full: {self.length} + {t} tokens > capacity {self.capacity}")
        slots = slice(self.length, self.length + t)
        self.pos[:, slots] = pos
        if t > 1 or self.length == 0:  # prompts and chunks; single decode steps never pad
            self.padded = self.padded or bool((pos < 0).any())
        self.length += t
        return slots

    def write(self, layer: int, slots: slice | torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, Hkv, T, hd) in ``slots``; return the keys/values attention should read."""
        if isinstance(slots, torch.Tensor):  # graph mode: in place at a slot held in a tensor
            self.k[layer].index_copy_(2, slots, k)
            self.v[layer].index_copy_(2, slots, v)
            return self.k[layer], self.v[layer]
        self.k[layer][:, :, slots] = k
        self.v[layer][:, :, slots] = v
        end = self.capacity if self.static else self.length
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def key_pos(self) -> torch.Tensor:
        """Positions of the slots attention reads: (B, S)."""
        return self.pos if self.static else self.pos[:, : self.length]

    def truncate(self, length: int) -> None:
        """Forget every slot from ``length`` on (rejected speculative tokens, retries)."""
        if length < self.length:
            self.pos[:, length:] = -1
            self.length = length
            if length == 0:
                self.padded = False

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep only the batch rows ``rows`` (R,) in that order (finished rows leave the batch)."""
        self.k = [k.index_select(0, rows) for k in self.k]
        self.v = [v.index_select(0, rows) for v in self.v]
        self.pos = self.pos.index_select(0, rows)

    def evict(self, n_drop: int, n_sink: int,
              rope_at: Callable[[torch.Tensor, torch.dtype], tuple[torch.Tensor, torch.Tensor] | None]) -> torch.Tensor:
        """Drop ``n_drop`` slots after the first ``n_sink`` and slide the rest down.

        Each row's moved keys are re-indexed back by the number of real (non-padding) tokens it
        lost, so its positions stay contiguous (the sliding-window / attention-sink cache): a key
        is turned back by its old position's RoPE angles and on by its new one's, which holds for
        any RoPE layout (1D, or 3D over frames). ``rope_at`` (positions, dtype -> cos, sin, or None
        without RoPE) is the model's :meth:`Transformer.rope`; a model without RoPE cannot be slid.
        Returns that per-row shift (B,): the caller lowers its next positions by it.
        """
        start, end = n_sink + n_drop, self.length
        if n_drop <= 0 or start > end:
            raise ValueError(f"cannot drop {n_drop} slots after {n_sink} sink slots from {end} used")
        n_move = end - start
        shift = (self.pos[:, n_sink:start] >= 0).sum(dim=1)  # (B,) real tokens dropped per row
        old = self.pos[:, start:end].clamp(min=0)  # padded slots stay unreadable whatever they hold
        before, after = rope_at(old, torch.float32), rope_at((old - shift[:, None]).clamp(min=0), torch.float32)
        if before is None:
            raise ValueError("only a RoPE model's cache can slide (learned positions are absolute)")
        dst = slice(n_sink, n_sink + n_move)
        for layer in range(len(self.k)):
            self.v[layer][:, :, dst] = self.v[layer][:, :, start:end].clone()
            moved = self.k[layer][:, :, start:end]
            back = apply_rope(moved.float(), before[0], -before[1])
            self.k[layer][:, :, dst] = apply_rope(back, *after).to(moved.dtype)
        moved_pos = self.pos[:, start:end]
        self.pos[:, dst] = torch.where(moved_pos >= 0, moved_pos - shift[:, None], moved_pos)
        self.pos[:, n_sink + n_move :] = -1
        self.length = n_sink + n_move
        return shift


def mark_static(*tensors: torch.Tensor) -> None:
    """Mark tensors as static inputs of a compiled step (``torch._dynamo.mark_static_address``,
    unguarded): CUDA graphs read them where they are instead of copying them into the graph's
    own buffers every replay, and re-record if a later call brings new ones (a new batch)."""
    mark = getattr(torch._dynamo, "mark_static_address", None)
    if mark is not None:
        for t in tensors:
            mark(t)
