"""Training a CrystaLLM-style CIF model: each preprocessed CIF is one sequence from position 0
(the way it is prompted), padded in the batch, every real token scored."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from argen.checkpoints.argen_format import save_model_dir
from argen.engine.config import TransformerConfig
from argen.engine.transformer import Transformer
from argen.lab.recipes import TrainRecipe
from argen.modalities.crystal.cif_text import read_split, split_texts
from argen.modalities.crystal.tokenizer import CIFTokenizer

# the GPT-2 / nanoGPT block CrystaLLM uses; a recipe's model section may override any of these
GPT2_STYLE = dict(pos_emb="learned", norm="layernorm", norm_bias=True, mlp="gelu_tanh", qkv_bias=True,
                  out_bias=True, mlp_bias=True, tie_embeddings=True)


def pad_sequences(seqs: list[list[int]]) -> torch.Tensor:
    """Token ids (N, Lmax) with -1 after each sequence's end."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), -1, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s)
    return out


class CrystalTask:
    modality = "crystal"

    def __init__(self, recipe: TrainRecipe) -> None:
        self.recipe = recipe
        d = recipe.data
        self.tokenizer = CIFTokenizer()
        rows = read_split(d.path)
        texts = split_texts(rows, d.symprec)
        cut = len(texts) - d.val_size
        ids = [self.tokenizer.encode(t) for t in texts]
        self.train, self.val = pad_sequences(ids[:cut]), pad_sequences(ids[cut:])
        self.max_len = max(len(s) for s in ids)
        self.train_tokens = int((self.train >= 0).sum())
        self.val_tokens = int((self.val >= 0).sum())
        print(f"crystal data: {cut} training CIFs ({self.train_tokens:,} tokens), {d.val_size} held out, "
              f"longest {self.max_len} tokens", file=sys.stderr, flush=True)

    def build_model(self, overrides: dict) -> Transformer:
        # the context fits the longest training CIF, rounded up to a multiple of 64
        seq = max(self.recipe.train.seq_len, 64 * ((self.max_len + 63) // 64))
        return Transformer(TransformerConfig(vocab_size=self.tokenizer.vocab_size, max_seq_len=seq,
                                             **{**GPT2_STYLE, **overrides}))

    def batch(self, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        pick = torch.randint(0, len(self.train), (batch_size,), generator=gen)
        rows = self.train[pick]
        return rows[:, : int((rows >= 0).sum(1).max())]

    def loss(self, model: Transformer, rows: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        x, y = rows[:, :-1].clamp(min=0), rows[:, 1:]  # padding reads token 0, is never a target
        logits = model(x)  # (B, T, V)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=-1, reduction=reduction)

    @torch.no_grad()
    def _val_loss(self, model: Transformer, n: int, batch_size: int = 50) -> float:
        total, count = 0.0, 0
        for i in range(0, n, batch_size):
            rows = self.val[i:i + batch_size]
            rows = rows[:, : int((rows >= 0).sum(1).max())]
            total += self.loss(model, rows, reduction="sum").item()
            count += int((rows[:, 1:] >= 0).sum())
        return total / count

    def quick_val_loss(self, model: Transformer, batches: int, batch_size: int, dtype: torch.dtype) -> float:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            return self._val_loss(model, min(len(self.val), batches * batch_size))

    def final_metrics(self, model: Transformer) -> dict:
        d = self.recipe.data
        out = {"val_loss": round(self._val_loss(model, len(self.val)), 4), "train_cifs": len(self.train),
               "val_cifs": len(self.val), "train_tokens": self.train_tokens}
        if d.eval_split:
            try:  # a failing evaluation must not lose the trained weights
                from argen.lab.eval.crystal import evaluate_split
                from argen.modalities.crystal.pipeline import CrystalPipeline

                pipe = CrystalPipeline(model, name=self.recipe.name)
                out["eval"] = evaluate_split(pipe, d.eval_split, n=d.eval_n, limit=d.eval_limit,
                                             sampling=self.default_sampling)
            except Exception as e:  # noqa: BLE001
                print(f"warning: evaluation failed: {e}", file=sys.stderr, flush=True)
        return out

    @property
    def default_sampling(self) -> dict:
        s = {"temperature": 1.0, "top_k": None, **(self.recipe.sampling or {})}
        return {**s, "top_k": None if s["top_k"] is None else int(s["top_k"])}  # recipe values arrive as floats

    def save(self, out: Path, model: Transformer, training: dict) -> None:
        save_model_dir(out, model, self.modality, {"name": self.recipe.name, "vocabulary": self.tokenizer.to_dict(),
                                                   "sampling": self.default_sampling, "training": training},
                       getattr(torch, self.recipe.train.save_dtype))

    def card(self, s: dict) -> str:
        d = self.recipe.data
        lines = f"""- Data: `{d.path}`: {s['train_cifs']:,} CIFs for training ({s['train_tokens']:,} tokens), the
  last {s['val_cifs']} rows held out for the validation loss. Each CIF is rewritten as CrystaLLM
  does (pymatgen CifWriter, symprec {d.symprec}; identity symmetry loop; atom-property block;
  4 decimals; `data_<cell composition>` header) and tokenised with CrystaLLM's 371-token vocabulary.
- Validation loss **{s['val_loss']:.4f}** nats/token over the held-out CIFs.
"""
        e = s.get("eval")
        if e:
            lines += f"""- Score (`argen eval crystal --split {d.eval_split} --n {e['n']} --limit {e['compositions']}`,
  the first {e['compositions']} test compositions, {e['n']} samples each, temperature {e['temperature']}):
  validity **{e['validity'] * 100:.1f}%**, match rate n=1 **{e['match_1'] * 100:.1f}%** (RMSE {e['rmse_1']}),
  n={e['n']} **{e['match_n'] * 100:.1f}%** (RMSE {e['rmse_n']}); StructureMatcher(stol=0.5, angle_tol=10,
  ltol=0.3) against the true structure. Published on Perov-5 (n=1 / n=20): CDVAE 45.31 / 88.51,
  DiffCSP 52.02 / 98.60.
"""
        return lines
