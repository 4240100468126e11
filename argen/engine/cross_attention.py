"""Cross-attention from the decoder's tokens to an encoder's states (encoder-decoder models).

The keys and values of the encoder states depend on neither the step nor the tokens, so they are
computed once per generation for every layer (:meth:`Transformer.memory`) and kept in a
:class:`Memory` that every forward pass reads; a decoding step then costs only the query and
output projections. MusicGen's decoder (transformers' ``MusicgenDecoderLayer``: self-attention,
cross-attention over the T5 states, MLP, each pre-norm) is the first user.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Memory:
    """Every layer's cross-attention keys and values, and which encoder positions may be read.

    ``k[l]``/``v[l]``: (B, H, S, head_dim); ``mask``: (B, 1, 1, S) bool, True where readable, or
    None when every position is. Rows line up with the decoder batch (with classifier-free
    guidance: the conditional rows, then their unconditional twins).
    """

    k: list[torch.Tensor]
    v: list[torch.Tensor]
    mask: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return self.k[0].shape[0]


class CrossAttention(nn.Module):
    """Queries from the decoder stream, keys and values from :class:`Memory` (width d_model)."""

    def __init__(self, d_model: int, n_head: int, head_dim: int, qkv_bias: bool, out_bias: bool) -> None:
        super().__init__()
        self.n_head, self.head_dim = n_head, head_dim
        self.q_proj = nn.Linear(d_model, n_head * head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(d_model, n_head * head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(d_model, n_head * head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(n_head * head_dim, d_model, bias=out_bias)

    def keys_values(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states (B, S, C) -> keys, values (B, H, S, head_dim)."""
        b, s, _ = states.shape
        k = self.k_proj(states).view(b, s, self.n_head, self.head_dim).transpose(1, 2)
        v = self.v_proj(states).view(b, s, self.n_head, self.head_dim).transpose(1, 2)
        return k, v

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, hd)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.n_head * self.head_dim))
