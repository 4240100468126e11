"""Character-level language modelling on a text corpus (nanoGPT's split)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from argen.checkpoints.argen_format import save_model_dir
from argen.engine.config import TransformerConfig
from argen.engine.transformer import Transformer
from argen.lab.data.text import TokenStream, read_corpus, split_corpus
from argen.lab.eval.text import stream_loss
from argen.lab.recipes import TrainRecipe
from argen.modalities.text.tokenizer import CharTokenizer


class TextTask:
    modality = "text"

    def __init__(self, recipe: TrainRecipe) -> None:
        self.recipe = recipe
        text = read_corpus(recipe.data.path)
        # the vocabulary covers the whole corpus, as nanoGPT's prepare.py does
        self.tokenizer = CharTokenizer.from_text(text)
        train_text, val_text = split_corpus(text, recipe.data.val_fraction)
        self.train = TokenStream(self.tokenizer.encode(train_text))
        self.val = TokenStream(self.tokenizer.encode(val_text))
        self.seq_len = recipe.train.seq_len

    def build_model(self, overrides: dict) -> Transformer:
        return Transformer(TransformerConfig(vocab_size=self.tokenizer.vocab_size, max_seq_len=self.seq_len, **overrides))

    def batch(self, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train.batch(batch_size, self.seq_len, gen)

    def loss(self, model: Transformer, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x).float().flatten(0, 1), y.flatten())

    def quick_val_loss(self, model: Transformer, batches: int, batch_size: int, dtype: torch.dtype) -> float:
        gen = torch.Generator().manual_seed(0)  # the same windows at every evaluation
        losses = []
        for _ in range(batches):
            batch = self.val.batch(batch_size, self.seq_len, gen)
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                losses.append(self.loss(model, batch).item())
        return sum(losses) / len(losses)

    def final_metrics(self, model: Transformer) -> dict:
        return {"val_loss": round(stream_loss(model, self.val, self.seq_len), 4),
                "val_tokens": len(self.val), "train_tokens": len(self.train)}

    def save(self, out: Path, model: Transformer, training: dict) -> None:
        self.tokenizer.save(out / "tokenizer.json")
        save_model_dir(out, model, self.modality, {"name": self.recipe.name, "tokenizer": "tokenizer.json",
                                                   "training": training}, getattr(torch, self.recipe.train.save_dtype))

    def card(self, s: dict) -> str:
        r = self.recipe
        share = round(r.data.val_fraction * 100)
        return f"""- Data: `{r.data.path}`, first {100 - share}% of characters for training
  ({s['train_tokens']:,} tokens), last {share}% for validation ({s['val_tokens']:,} tokens).
- Score: validation loss **{s['val_loss']:.4f}** nats/token over every token of the validation split
  (`argen eval text --model {r.name}` reproduces it).
"""
