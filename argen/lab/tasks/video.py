"""Training the block-causal latent video transformer on bouncing-objects clips.

Each training sequence is a window of latent frames cut into blocks. A random number of
leading blocks are context: clean, or lightly noised (what ``--cond-noise`` does at inference).
Every later block gets its own flow-matching time, uniform in (0, 1), and the loss is the
velocity error on those blocks (Diffusion Forcing's independent per-block noise; with the
block-causal mask a block only ever reads the blocks before it). Sometimes the first frames of
the first noisy block are clean too: generation continues a clip that ends mid-block that way.
With ``data.layout: clean-copy`` a sequence is instead the clean window followed by a noisy copy:
every noisy block is scored and reads only the clean blocks before it (ACDiT's skip-causal mask),
the context it has in generation, for twice the tokens. ``data.object_weights`` draws clips by
their number of objects. ``data.rollout`` makes part of some sequences' context the model's own
frames (:mod:`argen.lab.tasks.video_rollout`).
With ``data.foreground_weight`` above 1, latent positions that show some of an object count that
much more than the black background in the loss; with ``data.object_balance`` that extra weight is
shared out per object, so a small object counts as much as a large one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from argen.checkpoints.argen_format import copy_folder, save_folder
from argen.errors import UsageError
from argen.lab.data import bouncing
from argen.lab.recipes import TrainRecipe
from argen.lab.tasks.video_codec import render_clips
from argen.lab.tasks.video_rollout import MAX_TRUE_BLOCKS, Rollout, plan_rollout, with_generated_context
from argen.modalities.video.codec import load_codec_dir, to_unit
from argen.modalities.video.dit import VideoDiT, VideoModelConfig
from argen.modalities.video.text import CaptionVocab

COND_NOISE_MAX = 0.1
CAPTION_DROP = 0.1  # share of sequences trained without their caption (classifier-free guidance)
EVAL_CLIPS = 48
EVAL_STEPS = 20


@torch.no_grad()
def encode_clips(codec, clips: np.ndarray, batch: int = 16) -> torch.Tensor:
    """uint8 clips (N, F, H, W, 3) -> normalised latents (N, F, C, h, w)."""
    return torch.cat([codec.encode(to_unit(clips[i:i + batch])) for i in range(0, len(clips), batch)])


def foreground(clips: np.ndarray, size: int) -> torch.Tensor:
    """Which latent positions (size x size per frame) show some of an object: uint8 clips
    (N, F, H, W, 3) -> bool (N, F, size, size). Objects are anything brighter than the black
    background, anti-aliased edges included."""
    lit = torch.from_numpy(clips.max(axis=-1) > 8).float()  # (N, F, H, W)
    n, f, h, w = lit.shape
    return (F.adaptive_max_pool2d(lit.view(n * f, 1, h, w), size) > 0).view(n, f, size, size)


def balanced_foreground(clips: list, frames: int, size: int, ref: float | None = None) -> tuple[torch.Tensor, float]:
    """Foreground maps in which every object weighs the same whatever its size: float (N, F, size,
    size) for clip descriptions (:class:`argen.lab.data.bouncing.Clip`). An object that overlaps A
    latent positions in a frame adds ref / A to each of them, ``ref`` being the mean A over every
    object and frame (computed here unless given), so an object of average size weighs about as it
    does in :func:`foreground`'s plain map. Returns (maps, ref)."""
    cells = [bouncing.object_cells(c, frames, size) for c in clips]  # each (K, F, size, size)
    areas = [c.sum(axis=(2, 3), keepdims=True) for c in cells]  # (K, F, 1, 1)
    if ref is None:
        ref = float(np.mean(np.concatenate([a[a > 0] for a in areas])))
    maps = np.stack([(c * ref / np.maximum(a, 1)).sum(axis=0) for c, a in zip(cells, areas)])
    return torch.from_numpy(maps).float(), ref


def clip_weights(clips: list, per_count) -> tuple[torch.Tensor, list[float]]:
    """How often training draws each clip (:class:`argen.lab.data.bouncing.Clip`): a clip with k
    objects weighs ``per_count[k - 1]``. Returns the weights, float64 (N,) for
    ``torch.multinomial``, and the resulting shares of clips with one, two and three objects
    (the dataset draws one to three uniformly, so about ``per_count``'s proportions)."""
    counts = torch.tensor([len(c.movers) for c in clips]) - 1  # 0, 1, 2
    p = torch.tensor(per_count, dtype=torch.float64)[counts]
    return p, (torch.bincount(counts, p, minlength=3) / p.sum()).tolist()


def shift_times(t: torch.Tensor, shift: float) -> torch.Tensor:
    """s t / (1 + (s - 1) t): a monotone map of [0, 1] onto itself that moves times toward 1
    (more noise) for s > 1, as SD3 shifts its flow-matching schedule (Esser et al. 2024)."""
    return t if shift == 1.0 else shift * t / (1 + (shift - 1) * t)


class VideoTask:
    modality = "video"

    def __init__(self, recipe: TrainRecipe) -> None:
        self.recipe = recipe
        d = recipe.data
        if d.object_balance and d.foreground_weight == 1:
            raise UsageError("data.object_balance shares out foreground_weight, which is 1 (no extra weight)",
                             hint="set foreground_weight above 1, e.g. 5, or leave object_balance out")
        if d.rollout and d.layout == "clean-copy":
            raise UsageError("data.rollout works with the diffusion-forcing layout, not clean-copy",
                             hint="leave data.layout out, or set data.rollout to 0")
        self.codec_dir = Path(d.codec)
        self.codec, _ = load_codec_dir(self.codec_dir)
        self.vocab = CaptionVocab()
        captions, clips, movers = render_clips(d.seed, "train", d.train_size, d.clip_frames, d.collide)
        self.train = encode_clips(self.codec, clips)  # (N, Fc, C, h, w)
        self.fg_weight = d.foreground_weight
        size = self.train.shape[-1]
        self.train_text = self.vocab.encode_batch(captions)
        # 16 frames at least: the evaluation predicts 8 from 8
        val_caps, self.val_clips, self.val_movers = render_clips(d.seed, "val", d.val_size, max(d.frames, 16), d.collide)
        self.val = encode_clips(self.codec, self.val_clips)[:, :d.frames]
        if d.object_balance:  # (N, F, h, w) float: each object's positions share the same weight
            self.train_fg, ref = balanced_foreground(movers, d.clip_frames, size)
            self.val_fg = balanced_foreground(self.val_movers, self.val_clips.shape[1], size, ref)[0][:, :d.frames]
        else:  # (N, F, h, w) bool: positions that show some of an object
            self.train_fg = foreground(clips, size)
            self.val_fg = foreground(self.val_clips[:, :d.frames], size)
        self.val_text = self.vocab.encode_batch(val_caps)
        self.frames = d.frames
        self.batch_maker = self.make_clean_copy_batch if d.layout == "clean-copy" else self.make_batch
        self.rollout, self.rollout_steps = d.rollout, d.rollout_steps
        self.time_shift = d.time_shift
        self.clip_p = None  # every clip equally likely, or by its number of objects:
        if d.object_weights is not None:
            self.clip_p, self.count_shares = clip_weights(movers, d.object_weights)

    def build_model(self, overrides: dict) -> VideoDiT:
        c = self.codec.cfg
        cfg = VideoModelConfig(latent_channels=c.latent_channels, latent_size=c.latent_size,
                               text_vocab=len(self.vocab), **overrides)
        if self.frames % cfg.block_frames:
            raise ValueError(f"data.frames ({self.frames}) must be a multiple of block_frames ({cfg.block_frames})")
        if self.rollout and self.frames // cfg.block_frames < 3:  # 1 true block, 1 generated, 1 scored
            raise UsageError(f"data.rollout needs windows of 3 blocks or more; data.frames is {self.frames} "
                             f"at {cfg.block_frames} frames a block", hint="raise data.frames, e.g. 16")
        self.block_frames = cfg.block_frames
        return VideoDiT(cfg)

    def block_times(self, b: int, blocks: int, gen: torch.Generator) -> torch.Tensor:
        """Flow times (B, blocks) for noised blocks: uniform, shifted by ``data.time_shift``."""
        return shift_times(torch.rand(b, blocks, generator=gen), self.time_shift)

    def make_batch(self, latents: torch.Tensor, text: torch.Tensor, gen: torch.Generator, fg: torch.Tensor,
                   rollout: float = 0.0):
        """Noisy sequences from clean latent windows (B, F, C, h, w) and their object maps
        (B, F, h, w; bool, or float with ``data.object_balance``): (text, x_t, t, v target, loss
        weight (B, F, h, w), 0 on unscored frames). With ``rollout`` above 0 about that share of the
        sequences will read context the model generates, and a :class:`Rollout` saying which is
        appended when any does (the loss makes those frames)."""
        b, f = latents.shape[:2]
        fb = self.block_frames
        nb = f // fb
        t = self.block_times(b, nb, gen).repeat_interleave(fb, dim=1)  # (B, F): one time per block
        n_ctx = torch.randint(0, nb, (b,), generator=gen)  # leading context blocks
        plan = plan_rollout(b, nb, rollout, gen) if rollout > 0 else None
        if plan is not None:
            rows, true_blocks, ctx_blocks = plan
            n_ctx[rows] = ctx_blocks
        is_ctx = torch.arange(f)[None] < (n_ctx * fb)[:, None]  # (B, F)
        ctx_level = torch.rand(b, 1, generator=gen) * COND_NOISE_MAX * (torch.rand(b, 1, generator=gen) < 0.5)
        t = torch.where(is_ctx, ctx_level.expand(b, f), t)
        # sometimes the first noisy block starts with known (clean) frames
        known = torch.randint(0, fb, (b,), generator=gen) * (torch.rand(b, generator=gen) < 0.25)
        if plan is not None:
            known[rows] = 0  # a rollout ends on a whole block
        first = n_ctx * fb
        is_known = (torch.arange(f)[None] >= first[:, None]) & (torch.arange(f)[None] < (first + known)[:, None])
        t = torch.where(is_known, torch.zeros_like(t), t)
        batch = self.noised(latents, text, t, ~(is_ctx | is_known), fg, gen)
        if plan is None or len(rows) == 0:
            return batch
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        return *batch, Rollout(rows, true_blocks * fb, ctx_blocks * fb, latents[rows], text[rows],
                               ctx_level[rows, 0], self.rollout_steps, seed)

    def noised(self, latents: torch.Tensor, text: torch.Tensor, t: torch.Tensor, scored: torch.Tensor,
               fg: torch.Tensor, gen: torch.Generator):
        """The rest of a batch, given the frames' times t (B, F) and which frames the loss scores
        (B, F): (text with some captions dropped, x_t, t, v target, loss weight (B, F, h, w))."""
        eps = torch.randn(latents.shape, generator=gen)
        tt = t[:, :, None, None, None]
        x_t = (1 - tt) * latents + tt * eps
        drop = torch.rand(latents.shape[0], generator=gen) < CAPTION_DROP
        text = text.masked_fill(drop[:, None], 0)
        weight = (1 + (self.fg_weight - 1) * fg.float()) * scored[:, :, None, None]
        return text, x_t, t, eps - latents, weight

    def make_clean_copy_batch(self, latents: torch.Tensor, text: torch.Tensor, gen: torch.Generator, fg: torch.Tensor):
        """:meth:`make_batch` for ``data.layout: clean-copy``: every block is noised at its own time
        and scored, each reading the clean blocks before it (lightly noised in half the sequences,
        as ``--cond-noise`` does), as in generation. Returns make_batch's tuple plus the clean
        frames and their times."""
        b, f = latents.shape[:2]
        fb = self.block_frames
        t = self.block_times(b, f // fb, gen).repeat_interleave(fb, dim=1)  # (B, F): one time per block
        ctx_level = torch.rand(b, 1, generator=gen) * COND_NOISE_MAX * (torch.rand(b, 1, generator=gen) < 0.5)
        c = ctx_level[:, :, None, None, None]
        clean = (1 - c) * latents + c * torch.randn(latents.shape, generator=gen)
        # sometimes every block starts with known (clean) frames: a clip that ends mid-block
        known = torch.randint(0, fb, (b,), generator=gen) * (torch.rand(b, generator=gen) < 0.25)
        is_known = (torch.arange(f) % fb)[None] < known[:, None]  # (B, F)
        t = torch.where(is_known, torch.zeros_like(t), t)
        return *self.noised(latents, text, t, ~is_known, fg, gen), clean, ctx_level.expand(b, f)

    def batch(self, batch_size: int, gen: torch.Generator):
        if self.clip_p is None:
            idx = torch.randint(0, len(self.train), (batch_size,), generator=gen)
        else:
            idx = torch.multinomial(self.clip_p, batch_size, replacement=True, generator=gen)
        start = torch.randint(0, self.train.shape[1] - self.frames + 1, (batch_size,), generator=gen)
        pick = [(i, slice(s, s + self.frames)) for i, s in zip(idx.tolist(), start.tolist())]
        windows = torch.stack([self.train[i, sl] for i, sl in pick])
        fg = torch.stack([self.train_fg[i, sl] for i, sl in pick])
        if self.rollout:
            return self.make_batch(windows, self.train_text[idx], gen, fg, self.rollout)
        return self.batch_maker(windows, self.train_text[idx], gen, fg)

    def loss(self, model: VideoDiT, batch) -> torch.Tensor:
        text, x_t, t, target, weight, *clean = batch  # clean frames and times: the clean-copy layout
        if clean and isinstance(clean[0], Rollout):  # context the model makes itself
            x_t, clean = with_generated_context(model, x_t, clean[0]), []
        pred = (model.forward_clean_copy(text, *clean, x_t, t) if clean else model(text, x_t, t)).float()
        err = (pred - target).pow(2).mean(dim=2)  # (B, F, h, w)
        return (err * weight).sum() / weight.sum().clamp(min=1e-6)

    def quick_val_loss(self, model: VideoDiT, batches: int, batch_size: int, dtype: torch.dtype) -> float:
        gen = torch.Generator().manual_seed(0)
        losses = []
        for i in range(batches):
            sl = slice(i * batch_size % len(self.val), i * batch_size % len(self.val) + batch_size)
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                batch = self.batch_maker(self.val[sl], self.val_text[sl], gen, self.val_fg[sl])
                losses.append(self.loss(model, batch).item())
        return float(np.mean(losses))

    def final_metrics(self, model: VideoDiT) -> dict:
        from argen.lab.eval.video import predict_scores

        window = min(int((self.recipe.sampling or {}).get("context", 8)), 8)  # as the saved model is sampled
        scores = predict_scores(model, self.codec, self.val_clips[:EVAL_CLIPS], self.val_text[:EVAL_CLIPS],
                                steps=EVAL_STEPS, window=window)
        return {**scores, "val_clips": len(self.val), "train_clips": len(self.train)}

    def save(self, out: Path, model: VideoDiT, training: dict) -> None:
        meta = {"modality": "video", "video": model.cfg.to_dict(), "vocab": self.vocab.words,
                "fps": bouncing.FPS, "codec": "codec", "name": self.recipe.name, "training": training,
                "data": {"collide": self.recipe.data.collide},
                "sampling": {"cfg_scale": 1.0, **(self.recipe.sampling or {})}}
        save_folder(out, model.state_dict(), meta, getattr(torch, self.recipe.train.save_dtype))
        copy_folder(self.codec_dir, Path(out) / "codec")

    def card(self, s: dict) -> str:
        d = self.recipe.data
        weighted = (f"- Loss: the velocity error at latent positions that show some of an object weighs\n"
                    f"  {d.foreground_weight:g}, on the black background 1 (`data.foreground_weight`).\n"
                    if d.foreground_weight != 1 else "")
        if d.foreground_weight != 1 and d.object_balance:
            weighted += ("  The extra weight is shared out per object (`data.object_balance`): a small object's\n"
                         "  positions weigh more, so every object counts the same.\n")
        if d.collide:
            weighted = ("- The objects bounce off each other as well as off the walls (`data.collide`), so they\n"
                        "  never overlap; `argen eval video` scores this model on such clips.\n") + weighted
        if d.layout == "clean-copy":
            weighted += ("- Layout (`data.layout: clean-copy`): each sequence is the clean window then the noisy\n"
                         "  one; every noisy block is scored, reading the clean blocks before it, as in generation.\n")
        if d.rollout:
            weighted += (f"- Own-frame context (`data.rollout: {d.rollout:g}`): in that share of the sequences, the\n"
                         f"  model generates blocks after 1-{MAX_TRUE_BLOCKS} true ones ({d.rollout_steps} flow-Euler steps) and the\n"
                         f"  later, scored blocks read those instead of the true frames.\n")
        if d.time_shift != 1.0:
            weighted += (f"- Noise times of the scored blocks shifted toward noise (`data.time_shift: {d.time_shift:g}`):\n"
                         f"  uniform t becomes s t / (1 + (s - 1) t).\n")
        if d.object_weights is not None:
            shares = self.count_shares
            weighted += (f"- Clips drawn by number of objects (`data.object_weights`): one {shares[0]:.0%}, two "
                         f"{shares[1]:.0%}, three {shares[2]:.0%} of the training sequences.\n")
        return f"""- Data: the procedural bouncing-objects dataset (`argen/data/bouncing.py`, seed {d.seed}):
  {s['train_clips']:,} training clips of {d.clip_frames} frames (random {d.frames}-frame windows),
  encoded by the frame codec in `codec/` (trained by `recipes/train/video-codec-bouncing.yaml`).
{weighted}- Score on {s['clips']} validation clips, predicting 8 frames from 8 ({EVAL_STEPS} flow-Euler steps):
  PSNR **{s['psnr']:.2f} dB** against the true continuation, copy-the-last-frame baseline
  {s['baseline_psnr']:.2f} dB ({s['psnr'] - s['baseline_psnr']:+.2f} dB); SSIM {s['ssim']:.3f} (baseline
  {s['baseline_ssim']:.3f}).
"""
