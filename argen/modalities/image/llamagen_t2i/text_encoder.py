"""Captions for LlamaGen's text-to-image GPT: FLAN-T5-XL encoder states, 120 tokens, left-padded.

Facts from FoundationVision/LlamaGen ``language/t5.py`` (``T5Embedder.get_text_embeddings``:
``padding='max_length'``, ``max_length=120``, ``truncation=True``, the encoder's
``last_hidden_state`` and the attention mask) and ``autoregressive/sample/sample_t2i.py`` (unless
``--no-left-padding``: each caption's valid tokens are rotated to the end, the mask flipped, and
the padded vectors zeroed). The reference cleans captions with DeepFloyd IF's ``clean_caption``
(URLs, HTML, CJK, ...); here only its lower-casing and whitespace folding are applied, which is
all it does to an ordinary prompt. The reference truncates long prompts silently; argen refuses
them. transformers is imported only when a caption is first encoded.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch

from argen.errors import ArgenError, UsageError


def clean(prompt: str) -> str:
    return re.sub(r"\s+", " ", prompt.strip().lower())


def left_pad(emb: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded encoder states (B, N, D) and masks (B, N) -> the same left-padded, padded
    vectors zeroed; returns (states (B, N, D), valid (B, N) bool)."""
    out = []
    for e, m in zip(emb, mask):
        n = int(m.sum().item())
        out.append(torch.cat([e[n:], e[:n]]))
    valid = torch.flip(mask, dims=[-1]).bool()
    return torch.stack(out) * valid[..., None], valid


class T5CaptionEncoder:
    """Prompts -> (states (B, 120, d_model), right-padded mask (B, 120)) with a local T5 encoder."""

    def __init__(self, name_or_path: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 max_tokens: int = 120) -> None:
        self.name, self.device, self.dtype, self.max_tokens = name_or_path, device, dtype, max_tokens
        self.tokenizer = self.model = None

    def _load(self) -> None:
        from transformers import AutoTokenizer, T5EncoderModel

        try:  # a copy already on disk only: nothing is downloaded while generating
            self.tokenizer = AutoTokenizer.from_pretrained(self.name, local_files_only=True)
            self.model = T5EncoderModel.from_pretrained(self.name, local_files_only=True, dtype=self.dtype)
        except (OSError, ValueError) as e:
            raise ArgenError(f"the text encoder {self.name} is not available locally ({str(e).splitlines()[0][:120]})",
                             hint=f"download it first, e.g. `hf download {self.name}`") from None
        self.model = self.model.to(self.device).eval()

    def count_tokens(self, prompts: Sequence[str]) -> list[int]:
        if self.tokenizer is None:
            self._load()
        return [len(ids) for ids in self.tokenizer([clean(p) for p in prompts])["input_ids"]]

    @torch.inference_mode()
    def __call__(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        for p, n in zip(prompts, self.count_tokens(prompts)):
            if n > self.max_tokens:
                raise UsageError(f"the prompt {p[:40]!r}... is {n} T5 tokens; this model reads at most "
                                 f"{self.max_tokens}",
                                 hint="shorten the prompt")
        batch = self.tokenizer([clean(p) for p in prompts], max_length=self.max_tokens, padding="max_length",
                               truncation=True, return_tensors="pt")
        states = self.model(input_ids=batch["input_ids"].to(self.device),
                            attention_mask=batch["attention_mask"].to(self.device)).last_hidden_state
        return states.float(), batch["attention_mask"].to(states.device)
