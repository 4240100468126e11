"""A loaded block-diffusion text model: the network, what the sampler needs to know about it
(:class:`argen.engine.sampling.masked_block.Denoiser`), its tokenizer and its sampling defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from argen.engine.kv_cache import KVCache


@dataclass
class BlockDiffusionModel:
    """``net`` is a block-causal transformer (argen's :class:`Transformer` or BD3-LM's DiT) whose
    attention blocks are ``block_size`` long: ``net(ids, pos=, cache=, head=False)`` gives the
    states its output head (``net.lm_head``, or the DiT's ``net.head``) turns into logits."""

    net: nn.Module
    family: str  # "bd3lm", "mdlm", "fast-dllm-v2" or "argen-bd3"
    mask_id: int
    block_size: int  # the block size the model was trained with
    token_shift: bool  # the output at position i predicts token i + 1 (Fast-dLLM v2)
    max_len: int
    tokenizer: Any = None  # encode/decode, or None (random test models)
    eos_id: int | None = None
    defaults: dict[str, Any] = field(default_factory=dict)  # sampler defaults: steps, threshold, sub_block, ...
    name: str = ""

    def __call__(self, ids: torch.Tensor, pos: torch.Tensor, cache: KVCache | None, out: slice) -> torch.Tensor:
        """Logits (B, len(out), V) of the positions ``out`` of ``ids`` (B, T); the head (on a
        large vocabulary, the dearest part of a pass) runs on those positions only."""
        h = self.net(ids, pos=pos, cache=cache, head=False)  # (B, T, C)
        head = getattr(self.net, "head", None) or self.net.lm_head  # the DiT's head, or argen's
        return head(h[:, out])

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        return self.net.new_cache(batch, capacity)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "BlockDiffusionModel":
        self.net.to(device=device, dtype=dtype)
        return self
