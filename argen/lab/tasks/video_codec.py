"""Training the frame codec (a small AutoencoderKL) on bouncing-objects frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from argen.lab.analysis.bouncing import keeps_objects
from argen.lab.data import bouncing
from argen.lab.recipes import TrainRecipe
from argen.lab.tasks.image_tokenizer import psnr
from argen.modalities.video.codec import FrameCodec, FrameCodecConfig, save_codec_dir, to_uint8, to_unit

FOREGROUND_WEIGHT = 10.0  # objects cover a few percent of a frame; the black background is easy


def render_clips(seed: int, split: str, n: int, frames: int, collide: bool = False) -> tuple[list[str], np.ndarray, list]:
    """Clips 0..n-1 of a split: captions, uint8 frames (n, frames, H, W, 3), clip descriptions."""
    captions, clips, movers = [], np.empty((n, frames, bouncing.SIZE, bouncing.SIZE, 3), np.uint8), []
    for i in range(n):
        caption, clips[i], clip = bouncing.sample(seed, i, split, frames, collide=collide)
        captions.append(caption)
        movers.append(clip)
    return captions, clips, movers


class VideoCodecTask:
    modality = "video-codec"

    def __init__(self, recipe: TrainRecipe) -> None:
        self.recipe = recipe
        d = recipe.data
        _, clips, _ = render_clips(d.seed, "train", d.train_size, d.clip_frames, d.collide)
        self.train = clips.reshape(-1, *clips.shape[2:])  # every frame of every clip
        _, self.val_clips, self.val_movers = render_clips(d.seed, "val", d.val_size, d.frames, d.collide)

    def build_model(self, overrides: dict) -> FrameCodec:
        return FrameCodec(FrameCodecConfig(**overrides))

    def batch(self, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, len(self.train), (batch_size,), generator=gen)
        return to_unit(self.train[idx.numpy()])

    def loss(self, model: FrameCodec, x: torch.Tensor) -> torch.Tensor:
        rec, kl = model(x)
        fg = (x > -0.9).any(dim=1, keepdim=True).float()  # (N, 1, H, W): object pixels
        w = 1 + (FOREGROUND_WEIGHT - 1) * fg
        err = rec.float() - x
        return (w * (err.pow(2) + err.abs())).mean() / w.mean() + kl

    def reconstruct(self, model: FrameCodec, clips: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(clips), 16):
            x = to_unit(clips[i:i + 16])  # (b, F, 3, H, W)
            out.append(to_uint8(model.decode(model.encode(x))))
        return np.concatenate(out)

    def quick_val_loss(self, model: FrameCodec, batches: int, batch_size: int, dtype: torch.dtype) -> float:
        clips = self.val_clips[: max(1, batches * batch_size // self.val_clips.shape[1])]
        rec = self.reconstruct(model, clips)
        return float(np.mean((rec / 127.5 - clips / 127.5) ** 2))

    def final_metrics(self, model: FrameCodec) -> dict:
        # latent statistics first: they normalise what the video transformer sees
        sample = to_unit(self.train[:: max(1, len(self.train) // 4096)])
        z = torch.cat([model.raw_latents(sample[i:i + 256]) for i in range(0, len(sample), 256)])  # (N, C, h, w)
        model.set_latent_stats(z.mean(dim=(0, 2, 3)), z.std(dim=(0, 2, 3)))
        rec = self.reconstruct(model, self.val_clips)
        kept = [keeps_objects(r, {m.color for m in c.movers}) for r, c in zip(rec, self.val_movers)]
        return {"psnr": round(psnr(rec, self.val_clips), 2), "objects_kept": round(float(np.mean(kept)), 4),
                "val_clips": len(self.val_clips), "train_frames": len(self.train)}

    def save(self, out: Path, model: FrameCodec, training: dict) -> None:
        save_codec_dir(out, model, {"name": self.recipe.name, "training": training},
                       getattr(torch, self.recipe.train.save_dtype))

    def card(self, s: dict) -> str:
        d = self.recipe.data
        colliding = ", objects bouncing off each other" if d.collide else ""
        return f"""- Data: the procedural bouncing-objects dataset (`argen/data/bouncing.py`, seed {d.seed}):
  {s['train_frames']:,} training frames ({d.train_size} clips of {d.clip_frames}{colliding}), {s['val_clips']} validation clips.
- Score: reconstruction PSNR **{s['psnr']} dB** on the validation clips; the segmentation finds
  every object of {s['objects_kept'] * 100:.1f}% of the reconstructed clips.
"""
