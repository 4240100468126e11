"""`argen train text-block-diffusion`: a character-level block-diffusion model (BD3-LM's
objective, :mod:`.objective`) on a text corpus, with nanoGPT's split like the ``text`` task.

The model is argen's transformer with ``block_size`` > 1 (bidirectional inside a block, causal
across blocks) and one more id than the corpus has characters: the mask token. Its folder is an
argen text model folder whose config.json also holds a ``block_diffusion`` section (mask id,
block size, the sampler's defaults), which is how loaders recognise it.

``model.token_shift: true`` trains Fast-dLLM v2's token shift (the output at ``j - 1`` predicts
token ``j``), which lets ``train.init`` start from an autoregressive model of the same corpus and
shape (``shakespeare-char``): each output keeps predicting the next token, as it was trained to
(only the attention inside a block changes); the mask token's embedding row is added as the mean
of the others.
"""

from __future__ import annotations

from pathlib import Path

import torch

from argen.checkpoints.argen_format import save_model_dir
from argen.engine.config import TransformerConfig
from argen.engine.transformer import Transformer
from argen.lab.data.text import TokenStream
from argen.lab.tasks.text import TextTask
from argen.modalities.text.bd3lm.objective import bd3_loss, nelbo


def scored_windows(stream: TokenStream, n: int) -> torch.Tensor:
    """Windows (W, n) that overlap by one token: each window's first token is its clean start and
    every other token of the stream is scored once, with at least one token of context (as the
    next-token loss scores every token after the first)."""
    ids = stream.ids
    w = (len(ids) - 1) // (n - 1)
    starts = torch.arange(w) * (n - 1)
    return ids[starts[:, None] + torch.arange(n)]


class BlockDiffusionTextTask(TextTask):
    modality = "text"

    def __init__(self, recipe) -> None:
        super().__init__(recipe)
        self.mask_id = self.tokenizer.vocab_size  # one id after the characters
        self.block_size = int(recipe.model.get("block_size", 1))
        self.shift = bool(recipe.model.get("token_shift", False))
        if self.block_size < 2 or self.seq_len % self.block_size:
            from argen.errors import ArgenError

            raise ArgenError(f"model.block_size must be at least 2 and divide train.seq_len ({self.seq_len}), "
                             f"got {self.block_size}", hint="e.g. model.block_size: 8")

    def build_model(self, overrides: dict) -> Transformer:
        overrides = {k: v for k, v in overrides.items() if k != "token_shift"}
        return Transformer(TransformerConfig(vocab_size=self.tokenizer.vocab_size + 1, max_seq_len=self.seq_len,
                                             **overrides))

    def adapt_init(self, state: dict[str, torch.Tensor], model: Transformer) -> dict[str, torch.Tensor]:
        """An autoregressive model's weights for this model: the embedding and output rows of the
        characters kept, the mask token's row added (embedding: the mean row; output: zeros, and
        the mask is never predicted)."""
        out = dict(state)
        for key in ("embed.weight", "lm_head.weight"):
            w = state.get(key)
            if w is not None and w.shape[0] == self.mask_id:
                extra = w.float().mean(0, keepdim=True) if key == "embed.weight" else torch.zeros_like(w[:1].float())
                out[key] = torch.cat([w, extra.to(w.dtype)])
        return out

    def batch(self, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        return self.train.batch(batch_size, self.seq_len, gen)[0]  # (B, n) clean windows

    def loss(self, model: Transformer, x0: torch.Tensor) -> torch.Tensor:
        return bd3_loss(model, x0, self.block_size, self.mask_id, shift=self.shift)

    def quick_val_loss(self, model: Transformer, batches: int, batch_size: int, dtype: torch.dtype) -> float:
        gen = torch.Generator().manual_seed(0)  # the same windows and masks at every evaluation
        windows = torch.cat([self.val.batch(batch_size, self.seq_len, gen)[0] for _ in range(batches)])
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            return nelbo(model, windows, self.block_size, self.mask_id, draws=1, batch_size=batch_size, shift=self.shift)

    def final_metrics(self, model: Transformer) -> dict:
        bound = nelbo(model, scored_windows(self.val, self.seq_len), self.block_size, self.mask_id, draws=4,
                      shift=self.shift)
        return {"val_loss": round(bound, 4), "val_tokens": len(self.val), "train_tokens": len(self.train)}

    def save(self, out: Path, model: Transformer, training: dict) -> None:
        self.tokenizer.save(out / "tokenizer.json")
        r = self.recipe
        section = {"family": "argen-bd3", "mask_id": self.mask_id, "block_size": self.block_size,
                   "objective": "bd3lm-nelbo", "first_token_clean": True, **({"token_shift": True} if self.shift else {}),
                   **(r.sampling or {})}
        save_model_dir(out, model, self.modality, {"name": r.name, "tokenizer": "tokenizer.json",
                                                   "block_diffusion": section, "training": training},
                       getattr(torch, r.train.save_dtype))

    def card(self, s: dict) -> str:
        r = self.recipe
        share = round(r.data.val_fraction * 100)
        return f"""- Data: `{r.data.path}`, first {100 - share}% of characters for training
  ({s['train_tokens']:,} tokens), last {share}% for validation ({s['val_tokens']:,} tokens).
- Objective: BD3-LM's block diffusion negative ELBO, blocks of {self.block_size} characters, mask id {self.mask_id}.
- Score: validation bound **{s['val_loss']:.4f}** nats/character (negative ELBO, 4 stratified masking
  rates per block, every validation character but the first scored once).
"""
