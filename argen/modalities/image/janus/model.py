"""Janus's image-generation model on argen's engine: the Llama language model (argen's
:class:`Transformer` and static KV cache) between Janus's generation embedding + aligner (input
side) and its generation head (output side).

Facts from transformers 5 ``models/janus/modeling_janus.py`` (and deepseek-ai/Janus
``janus/models/modeling_vlm.py``, which it converts): an image token ``t`` enters the language model
as ``aligner(gen_embed[t])``, the aligner being ``fc1`` then (GELU, linear) repeated
``num_hidden_layers - 1`` times (``JanusVQVAEAlignerMLP``); the next image token's logits are
``vision_head(GELU(proj_out(h)))`` of the final (normed) hidden state ``h`` (``JanusVQVAEHead``);
the prompt's text tokens use the language model's own embedding.

How it meets the engine: the model's "vocabulary" is the image codebook (ids ``0 .. K-1``, what
the head predicts and the loop samples), and a prompt's text token ``t`` is passed as id ``K + t``.
So :func:`argen.engine.sampling.next_token.generate` runs it unchanged: left padding, per-row seeds,
CFG by batch doubling, forced tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from argen.engine.kv_cache import KVCache
from argen.engine.transformer import Transformer
from argen.modalities.image.janus.config import JanusSpec


class JanusImageLM(nn.Module):
    """Image-token logits for a sequence of text and image tokens.

    Call with ids (B, T) (image tokens ``< codebook_size``, text token ``t`` as ``codebook_size + t``),
    positions (B, T) (-1 on left padding) and optionally a :class:`KVCache`; returns logits
    (B, N, codebook_size) for the last ``num_logits`` positions (all when None). Duck-types the
    parts of :class:`Transformer` that the next-token loop reads (``cfg``, ``embed``, ``new_cache``,
    ``rope``).
    """

    def __init__(self, spec: JanusSpec) -> None:
        super().__init__()
        self.spec = spec
        self.codebook_size = spec.codebook_size
        self.lm = Transformer(spec.text)
        self.gen_embed = nn.Embedding(spec.codebook_size, spec.code_dim)
        widths = [spec.code_dim] + [spec.projection_dim] * spec.aligner_layers
        self.aligner = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.head_proj = nn.Linear(spec.text.d_model, spec.projection_dim)
        self.head_out = nn.Linear(spec.projection_dim, spec.codebook_size)

    # -- what the next-token loop reads from a Transformer
    @property
    def cfg(self):
        return self.lm.cfg

    @property
    def embed(self) -> nn.Embedding:
        return self.lm.embed

    def new_cache(self, batch: int, capacity: int | None = None, dtype: torch.dtype | None = None) -> KVCache:
        return self.lm.new_cache(batch, capacity, dtype)

    def rope(self, pos: torch.Tensor, dtype: torch.dtype):
        return self.lm.rope(pos, dtype)

    # -- Janus's two ends
    def image_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        """Image tokens (...,) -> language-model inputs (..., d_model) through the aligner."""
        h = self.aligner[0](self.gen_embed(tokens))
        for layer in self.aligner[1:]:
            h = layer(F.gelu(h, approximate=self.spec.activation))
        return h

    def embed_tokens(self, idx: torch.Tensor) -> torch.Tensor:
        """Mixed ids (B, T) -> embeddings (B, T, d_model): text ids through the language model's
        table, image ids through the generation embedding and aligner."""
        k = self.codebook_size
        is_text = (idx >= k)[..., None]  # (B, T, 1)
        text = self.lm.embed((idx - k).clamp(min=0))
        image = self.image_embeddings(idx.clamp(max=k - 1)).to(text.dtype)
        return torch.where(is_text, text, image)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Final hidden states (..., d_model) -> image-token logits (..., codebook_size)."""
        return self.head_out(F.gelu(self.head_proj(h), approximate=self.spec.activation))

    def forward(self, idx: torch.Tensor, pos: torch.Tensor | None = None, cache: KVCache | None = None,
                num_logits: int | None = None) -> torch.Tensor:
        h = self.lm(None, pos=pos, cache=cache, num_logits=num_logits, embeds=self.embed_tokens(idx),
                    head=False)  # (B, N, d_model), after the final norm
        return self.head(h)  # (B, N, codebook_size)
