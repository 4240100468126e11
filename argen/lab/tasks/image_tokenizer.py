"""Training an image tokenizer (plain or multi-scale residual VQ autoencoder) on shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from argen.lab.analysis.shapes import score
from argen.lab.data import shapes
from argen.lab.recipes import TrainRecipe
from argen.lab.tasks.finetune import card_line, load_for_decoder_finetune
from argen.modalities.image.vq import ImageTokenizer, VQConfig, load_tokenizer_dir, save_tokenizer_dir, to_uint8, to_unit

RESTART_EVERY = 50  # steps between dead-code restarts
FOREGROUND_WEIGHT = 10.0
ANALYSED = 300  # validation images whose reconstructions the analyser reads


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of uint8 images, over the whole set."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


@torch.no_grad()
def reconstruct(model: ImageTokenizer, images: np.ndarray, batch: int = 100) -> np.ndarray:
    return np.concatenate([to_uint8(model.decode(model.encode(to_unit(images[i:i + batch]))))
                           for i in range(0, len(images), batch)])


class ImageTokenizerTask:
    modality = "image-tokenizer"

    def __init__(self, recipe: TrainRecipe) -> None:
        self.recipe = recipe
        d = recipe.data
        _, self.train, _ = shapes.render(d.seed, "train", d.train_size)
        _, self.val, self.val_scenes = shapes.render(d.seed, "val", d.val_size)
        self.steps = 0
        self.restarts = 0

    def build_model(self, overrides: dict) -> ImageTokenizer:
        base = self.recipe.data.decoder_finetune
        if base:
            return load_for_decoder_finetune(base, load_tokenizer_dir, overrides, "tokenizer")
        return ImageTokenizer(VQConfig(**overrides))

    def batch(self, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, len(self.train), (batch_size,), generator=gen)
        return to_unit(self.train[idx.numpy()])

    def loss(self, model: ImageTokenizer, x: torch.Tensor) -> torch.Tensor:
        if model.codes_frozen:  # the decoder reads exactly the codes that inference reads (float32)
            with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
                f_hat = model.quantizer.dequantize(model.split(model.encode(x)))
            rec, vq_loss = model.decoder(f_hat), x.new_zeros(())
        else:
            rec, vq_loss = model(x)
        rec = rec.float()
        if model.training and not model.codes_frozen:
            self.steps += 1
            if self.steps % RESTART_EVERY == 0:
                self.restarts += model.quantizer.restart_dead_codes()
        # objects cover a few percent of the pixels: weigh them up, or the background's easy
        # error dominates and colours are learned late (corners are always background)
        fg = ((x - x[..., :1, :1]).abs().amax(dim=1, keepdim=True) > 0.05).float()  # (B, 1, H, W)
        w = 1 + (FOREGROUND_WEIGHT - 1) * fg
        err = rec - x
        return (w * (err.pow(2) + err.abs())).mean() / w.mean() + vq_loss

    def quick_val_loss(self, model: ImageTokenizer, batches: int, batch_size: int, dtype: torch.dtype) -> float:
        n = min(len(self.val), batches * batch_size)
        rec = reconstruct(model, self.val[:n])
        return float(np.mean((rec.astype(np.float64) / 127.5 - self.val[:n] / 127.5) ** 2))

    def final_metrics(self, model: ImageTokenizer) -> dict:
        rec = reconstruct(model, self.val)
        tokens = torch.cat([model.encode(to_unit(self.val[i:i + 100])) for i in range(0, len(self.val), 100)])
        hits = [score(s, r)["all"] for s, r in zip(self.val_scenes[:ANALYSED], rec[:ANALYSED])]
        base, tuned = self.recipe.data.decoder_finetune, {}
        if base:  # the codes an image model was trained on must all still be there
            before = load_tokenizer_dir(base)[0]
            theirs = torch.cat([before.encode(to_unit(self.val[i:i + 100])) for i in range(0, len(self.val), 100)])
            tuned = {"decoder_finetune": base, "val_images_with_unchanged_codes": int((theirs == tokens).all(1).sum())}
        return {"val_loss": round(float(np.mean((rec / 127.5 - self.val / 127.5) ** 2)), 5),
                "psnr": round(psnr(rec, self.val), 2),
                "codes_used": int(tokens.unique().numel()),
                "analyser_on_reconstructions": round(sum(hits) / len(hits), 4),
                "val_images": len(self.val), "train_images": len(self.train), "restarts": self.restarts,
                **tuned}

    def save(self, out: Path, model: ImageTokenizer, training: dict) -> None:
        save_tokenizer_dir(out, model, {"name": self.recipe.name, "training": training},
                           getattr(torch, self.recipe.train.save_dtype))

    def card(self, s: dict) -> str:
        d = self.recipe.data
        tuned = card_line(d.decoder_finetune, s.get("val_images_with_unchanged_codes"), s["val_images"], "images")
        return f"""- Data: the procedural shapes dataset (`argen/data/shapes.py`, seed {d.seed}):
  {s['train_images']:,} training images, {s['val_images']:,} validation images.
{tuned}- Score: reconstruction PSNR **{s['psnr']} dB** on the validation images; {s['codes_used']} of the
  codebook's codes in use; the deterministic shapes analyser reads
  {s['analyser_on_reconstructions'] * 100:.1f}% of {ANALYSED} reconstructions fully correctly.
"""
