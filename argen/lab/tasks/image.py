"""Training a text-to-image transformer (next-token or next-scale, set by its tokenizer) on
shapes: captions become the prefix, the trained tokenizer's codes the targets."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import torch.nn.functional as F

from argen.checkpoints.argen_format import save_model_dir
from argen.engine.config import TransformerConfig
from argen.engine.transformer import Transformer
from argen.errors import UsageError
from argen.lab.data import shapes
from argen.lab.recipes import TrainRecipe
from argen.modalities.image.layout import ImageLayout
from argen.modalities.image.vq import load_tokenizer_dir, to_unit

CAPTION_DROPOUT = 0.1  # share of training captions replaced by NULL, for classifier-free guidance


class ImageTask:
    modality = "image"

    def __init__(self, recipe: TrainRecipe) -> None:
        self.recipe = recipe
        d = recipe.data
        self.tokenizer_dir = Path(d.tokenizer)
        self.tokenizer, _ = load_tokenizer_dir(self.tokenizer_dir)
        c = self.tokenizer.cfg
        if d.scale_inputs == "features" and len(c.scales) < 2:
            raise UsageError(f"data.scale_inputs: features needs a next-scale tokenizer; {d.tokenizer} has one scale",
                             hint="use scale_inputs: codes, or a tokenizer with several scales such as [1, 2, 4, 8]")
        try:  # the layout checks raster_scales against the scales and the inputs
            self.layout = ImageLayout(words=list(shapes.VOCABULARY), codebook_size=c.codebook_size,
                                      scales=list(c.scales), dataset="shapes",
                                      feature_dim=c.latent_dim if d.scale_inputs == "features" else 0,
                                      raster_scales=d.raster_scales)
        except ValueError as e:
            raise UsageError(f"data: {e} (tokenizer {d.tokenizer})",
                             hint="lower raster_scales, or use scale_inputs: codes") from None
        if d.parallel_share < 1 and not self.layout.num_raster:
            raise UsageError(f"data.parallel_share {d.parallel_share} needs raster_scales above 1 "
                             f"(scales sampled token by token); this layout samples every scale in parallel",
                             hint="set raster_scales, or leave parallel_share at 1")
        self.train = self._encode(*shapes.render(d.seed, "train", d.train_size)[:2])
        self.val = self._encode(*shapes.render(d.seed, "val", d.val_size)[:2])

    @torch.no_grad()
    def _encode(self, captions: list[str], images) -> tuple[torch.Tensor, torch.Tensor]:
        """(caption ids (N, P), image tokens (N, L))."""
        ids = torch.tensor([self.layout.caption_ids(c) for c in captions])
        tokens = torch.cat([self.tokenizer.encode(to_unit(images[i:i + 256])) for i in range(0, len(images), 256)])
        return ids, tokens

    def build_model(self, overrides: dict) -> Transformer:
        return Transformer(TransformerConfig(**self.layout.transformer_fields(), **overrides))

    def batch(self, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        ids, tokens = self.train
        pick = torch.randint(0, len(tokens), (batch_size,), generator=gen)
        captions = ids[pick].clone()
        drop = torch.rand(batch_size, generator=gen) < CAPTION_DROPOUT
        captions[drop] = self.layout.null
        return captions, tokens[pick]

    def loss(self, model: Transformer, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Training loss: mean cross-entropy over the image tokens. With ``data.parallel_share`` < 1
        only that share of the batch runs its parallel scales; the rest stop after the raster part
        (whose logits the parallel scales cannot change), and every predicted token weighs the same."""
        captions, tokens = batch
        full = max(1, round(len(tokens) * self.recipe.data.parallel_share))
        if full == len(tokens):
            return self.token_loss(model, captions, tokens)
        n_raster = self.layout.num_raster
        whole = self.token_loss(model, captions[:full], tokens[:full], reduction="sum")
        raster = self.token_loss(model, captions[full:], tokens[full:, :n_raster], reduction="sum")
        return (whole + raster) / (tokens[:full].numel() + tokens[full:, :n_raster].numel())

    def token_loss(self, model: Transformer, captions: torch.Tensor, tokens: torch.Tensor,
                   reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy of image tokens (B, L) after their captions; L may stop after the raster
        part (``layout.num_raster``), the inputs then stop there too."""
        lay = self.layout
        if lay.feature_dim:  # ids (B, P + 1): caption and BOS; then features (B, L - 1, C)
            x = (torch.cat([captions, tokens.new_full((len(tokens), 1), lay.bos)], dim=1),
                 self.tokenizer.scale_inputs(tokens))
        else:
            x = torch.cat([captions, lay.inputs(tokens)], dim=1)  # (B, P + n)
        logits = model(x)[:, lay.prefix_len:, : lay.codebook_size]  # (B, n, K)
        return F.cross_entropy(logits.float().flatten(0, 1), tokens.flatten(), reduction=reduction)

    @torch.no_grad()
    def _val_loss(self, model: Transformer, n: int, batch_size: int = 100) -> float:
        ids, tokens = self.val
        losses = [self.token_loss(model, ids[i:i + batch_size], tokens[i:i + batch_size]).item() * len(ids[i:i + batch_size])
                  for i in range(0, n, batch_size)]
        return sum(losses) / n

    def quick_val_loss(self, model: Transformer, batches: int, batch_size: int, dtype: torch.dtype) -> float:
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            return self._val_loss(model, min(len(self.val[0]), batches * batch_size))

    def final_metrics(self, model: Transformer) -> dict:
        from argen.engine.sampling.processors import SamplingConfig
        from argen.lab.eval.image import image_adherence
        from argen.modalities.image.pipeline import ImagePipeline

        pipe = ImagePipeline(model, self.tokenizer, self.layout)
        report = image_adherence(pipe, self.recipe.data.eval_prompts, sampling=SamplingConfig(**self.default_sampling))
        return {"val_loss": round(self._val_loss(model, len(self.val[0])), 4), "eval": report,
                "val_images": len(self.val[0]), "train_images": len(self.train[0])}

    @property
    def default_sampling(self) -> dict:
        return {"cfg_scale": 3.0, "temperature": 1.0, **(self.recipe.sampling or {})}

    def save(self, out: Path, model: Transformer, training: dict) -> None:
        (out / "tokenizer").mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "model.safetensors", "README.md"):
            if (self.tokenizer_dir / name).is_file():
                shutil.copyfile(self.tokenizer_dir / name, out / "tokenizer" / name)
        save_model_dir(out, model, self.modality, {"name": self.recipe.name, "image": self.layout.to_dict(),
                                                   "tokenizer": "tokenizer", "sampling": self.default_sampling,
                                                   "training": training}, getattr(torch, self.recipe.train.save_dtype))

    def card(self, s: dict) -> str:
        d, e = self.recipe.data, s["eval"]
        c = e["tokenizer_ceiling"]
        return f"""- Data: the procedural shapes dataset (`argen/data/shapes.py`, seed {d.seed}):
  {s['train_images']:,} captioned training images (without the held-out pairs orange square and
  magenta triangle), {s['val_images']:,} for validation; image tokens from `{d.tokenizer}`
  (a copy is in tokenizer/).
- Score: validation loss **{s['val_loss']:.4f}** nats/token. Prompt adherence over {e['prompts']} prompts
  (`argen eval image --model {self.recipe.name} --n {d.eval_prompts}`, CFG {e['cfg']}, temperature {e['temperature']}):
  single objects fully correct **{e['single_object'] * 100:.1f}%**, two-object relation
  **{e['relation'] * 100:.1f}%**, colour {e['color'] * 100:.1f}%, shape {e['shape'] * 100:.1f}%,
  position {e['position'] * 100:.1f}%, background {e['background'] * 100:.1f}%, held-out pairs
  fully correct {e['heldout'] * 100:.1f}%. Through this tokenizer, the generator's own images of
  the same prompts score {c['single_object'] * 100:.1f}% (single objects) and {c['relation'] * 100:.1f}%
  (relations): the ceiling a perfect transformer would reach.
"""
