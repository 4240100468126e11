"""LlamaGen's text-to-image GPT (``peizesun/llamagen_t2i``) as a configuration of argen's backbone.

Facts from FoundationVision/LlamaGen (commit ce98ec4) ``autoregressive/models/gpt.py``: with
``model_type='t2i'`` the class embedding is a ``CaptionEmbedder``: an MLP ``cap_proj`` (``fc1``
caption_dim -> dim, tanh-GELU, ``fc2`` dim -> dim, no biases) applied to ``cls_token_num`` = 120
caption vectors (FLAN-T5-XL's 2048-wide encoder states, ``--t5-feature-max-len 120`` in
``autoregressive/sample/sample_t2i.py``), and a persistent buffer ``uncond_embedding`` (120 x
caption_dim) that stands in for the caption in the unconditional rows of classifier-free
guidance (``generate.py``). The blocks are the class-conditional GPT's; the 2D RoPE table
(``precompute_freqs_cis_2d``) holds zeros for the 120 caption positions, so image token ``n`` sits
at position ``120 + n``. Released models (README, "Text-conditional image generation"):
LlamaGen-XL (775M), ``t2i_XL_stage1_256.pt`` (16x16 tokens) and ``t2i_XL_stage2_512.pt`` (32x32),
with the tokenizer ``vq_ds16_t2i.pt`` (VQ-16, 72M). Sampling defaults of ``sample_t2i.py``:
``--cfg-scale 7.5 --top-k 1000 --temperature 1.0 --top-p 1.0``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from argen.engine.config import DictConfig, TransformerConfig
from argen.errors import ArgenError
from argen.modalities.image.llamagen.gpt import CODEBOOK_SIZE, GPT_SIZES, llamagen_config

FAMILY = "llamagen_t2i"
CAPTION_TOKENS = 120
CAPTION_DIM = 2048  # FLAN-T5-XL's d_model
TEXT_ENCODER = "google/flan-t5-xl"
# text-conditional sizes of gpt.py (GPT_1B/3B/7B) beside the class-conditional ones
T2I_SIZES = {**GPT_SIZES, "gpt-1b": (22, 32, 2048), "gpt-7b": (32, 32, 4096)}


def matches(config: dict[str, Any]) -> bool:
    """Whether a config.json (as a dict) is an argen folder of a LlamaGen text-to-image model."""
    return isinstance(config, dict) and config.get("format") == "argen" and config.get("family") == FAMILY


@dataclass
class T2IConfig(DictConfig):
    """What a LlamaGen text-to-image checkpoint does not record: its size and resolution; plus the
    caption shape and the text encoder that makes captions."""

    model: str = "gpt-xl"
    image_size: int = 256
    downsample: int = 16
    caption_dim: int = CAPTION_DIM
    caption_tokens: int = CAPTION_TOKENS
    vocab_size: int = CODEBOOK_SIZE
    size: list[int] | None = None  # (n_layer, n_head, dim) for a size outside T2I_SIZES (tests)
    text_encoder: str = TEXT_ENCODER

    @property
    def grid(self) -> int:
        return self.image_size // self.downsample

    def transformer(self) -> TransformerConfig:
        """argen's backbone: the class-conditional GPT's blocks, no class table, 2D RoPE from
        position ``caption_tokens`` on (zero rotation, i.e. zero queries and keys, before it)."""
        if self.size is None and self.model not in T2I_SIZES:
            raise ArgenError(f"unknown LlamaGen model {self.model!r}", hint=f"choose one of {', '.join(T2I_SIZES)}")
        size = tuple(self.size) if self.size is not None else T2I_SIZES[self.model]
        base = llamagen_config(self.model, self.image_size, self.downsample, vocab_size=self.vocab_size, size=size)
        grid = self.grid
        return dataclasses.replace(base, cond_vocab=0, max_seq_len=self.caption_tokens + grid * grid,
                                   rope_grid_start=self.caption_tokens,
                                   extra={"llamagen_t2i": {"model": self.model, "image_size": self.image_size}})
