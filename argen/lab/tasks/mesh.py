"""Training a text-to-mesh transformer on shapes3d: the caption is the prefix, the mesh tokens
(MeshAnything V2 adjacent order by default) the targets."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from argen.checkpoints.argen_format import save_model_dir
from argen.engine.config import TransformerConfig
from argen.engine.transformer import Transformer
from argen.lab.data import shapes3d
from argen.lab.recipes import TrainRecipe
from argen.modalities.mesh.tokenizer import MeshLayout

CAPTION_DROPOUT = 0.1  # share of training captions replaced by NULL, for classifier-free guidance
IGNORE = -100


class MeshTask:
    modality = "mesh"

    def __init__(self, recipe: TrainRecipe) -> None:
        self.recipe = recipe
        d = recipe.data
        self.layout = MeshLayout(words=list(shapes3d.VOCABULARY), adjacent=d.adjacent, dataset="shapes3d")
        self.train = self._encode(shapes3d.generate(d.seed, "train", d.train_size))
        self.val = self._encode(shapes3d.generate(d.seed, "val", d.val_size))
        # length buckets: a batch is drawn from one bucket, so little of it is padding
        lengths = torch.tensor([len(t) for t in self.train[1]])
        order = lengths.argsort()
        self.buckets = [b for b in order.chunk(8) if len(b)]

    def _encode(self, samples: list[shapes3d.MeshSample]) -> tuple[torch.Tensor, list[list[int]]]:
        """(caption ids (N, P), mesh tokens per sample ending in EOS)."""
        ids = torch.tensor([self.layout.caption_ids(s.caption) for s in samples])
        tokens = [self.layout.tokenize(s.mesh) for s in samples]
        longest = max(len(t) for t in tokens)
        if longest > self.layout.max_seq_len:
            raise ValueError(f"a mesh needs {longest} tokens; the layout allows {self.layout.max_seq_len}")
        return ids, tokens

    def build_model(self, overrides: dict) -> Transformer:
        return Transformer(TransformerConfig(**self.layout.transformer_fields(), **overrides))

    def _pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, 1 + T - 1): BOS then the shifted tokens, PAD after the end; targets (B, T),
        IGNORE after the end."""
        width = max(len(r) for r in rows)
        x = torch.full((len(rows), width), self.layout.pad, dtype=torch.long)
        y = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, r in enumerate(rows):
            x[i, 0] = self.layout.bos
            x[i, 1:len(r)] = torch.tensor(r[:-1])
            y[i, :len(r)] = torch.tensor(r)
        return x, y

    def batch(self, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids, tokens = self.train
        bucket = self.buckets[int(torch.randint(0, len(self.buckets), (1,), generator=gen))]
        pick = bucket[torch.randint(0, len(bucket), (batch_size,), generator=gen)]
        captions = ids[pick].clone()
        drop = torch.rand(batch_size, generator=gen) < CAPTION_DROPOUT
        captions[drop] = self.layout.null
        x, y = self._pad([tokens[i] for i in pick.tolist()])
        return captions, x, y

    def loss(self, model: Transformer, batch) -> torch.Tensor:
        captions, x, y = batch
        logits = model(torch.cat([captions, x], dim=1))[:, self.layout.prefix_len:, : self.layout.mesh_vocab]  # (B, T, V)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=IGNORE)

    @torch.no_grad()
    def _val_loss(self, model: Transformer, n: int, batch_size: int = 32) -> float:
        ids, tokens = self.val
        total, count = 0.0, 0
        for i in range(0, n, batch_size):
            x, y = self._pad(tokens[i:i + batch_size])
            k = int((y != IGNORE).sum())
            total += self.loss(model, (ids[i:i + batch_size], x, y)).item() * k
            count += k
        return total / count

    def quick_val_loss(self, model: Transformer, batches: int, batch_size: int, dtype: torch.dtype) -> float:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            return self._val_loss(model, min(len(self.val[1]), batches * batch_size))

    def final_metrics(self, model: Transformer) -> dict:
        out = {"val_loss": round(self._val_loss(model, len(self.val[1])), 4), "val_meshes": len(self.val[1]),
               "train_meshes": len(self.train[1]),
               "tokens_per_mesh": round(sum(map(len, self.train[1])) / len(self.train[1]), 1)}
        try:  # a failing evaluation must not lose the trained weights
            from argen.lab.eval.mesh import evaluate_pipeline
            from argen.modalities.mesh.pipeline import MeshPipeline

            pipe = MeshPipeline(model, self.layout, sampling=self.default_sampling)
            d = self.recipe.data
            out["eval"] = evaluate_pipeline(pipe, d.eval_n, seed=d.seed, max_faces=d.eval_max_faces)
        except Exception as e:  # noqa: BLE001
            print(f"mesh evaluation failed: {type(e).__name__}: {e}", file=sys.stderr)
            out["eval"] = None
        return out

    @property
    def default_sampling(self) -> dict:
        return {"cfg_scale": 1.0, "temperature": 0.7, **(self.recipe.sampling or {})}

    def save(self, out: Path, model: Transformer, training: dict) -> None:
        save_model_dir(out, model, self.modality, {"name": self.recipe.name, "mesh": self.layout.to_dict(),
                                                   "sampling": self.default_sampling, "training": training},
                       getattr(torch, self.recipe.train.save_dtype))

    def card(self, s: dict) -> str:
        d, e = self.recipe.data, s.get("eval")
        lines = f"""- Data: the procedural shapes3d dataset (`argen/data/shapes3d.py`, seed {d.seed}):
  {s['train_meshes']:,} captioned training meshes, {s['val_meshes']:,} held-out validation meshes;
  {'adjacent-mesh (MeshAnything V2)' if d.adjacent else 'plain face-by-face'} tokenisation,
  {s['tokens_per_mesh']} tokens per training mesh on average.
- Score: validation loss **{s['val_loss']:.4f}** nats/token.
"""
        if e:
            lines += f"""- Generation over {e['n']} held-out captions (`argen eval mesh --n {e['n']}`, CFG {e['cfg']},
  temperature {e['temperature']}): parse **{e['parse'] * 100:.1f}%**, valid {e['valid'] * 100:.1f}%,
  class adherence **{e['adherence'] * 100:.1f}%** (nearest class by Chamfer distance), watertight
  {e['watertight'] * 100:.1f}%, mean Chamfer to the nearest reference {e['chamfer']:.4f}, mean
  {e['faces']:.1f} faces.
"""
        return lines
