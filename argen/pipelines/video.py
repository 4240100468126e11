"""Video generation and continuation: caption -> word ids; clip -> frame latents (codec) ->
the engine's block-diffusion loop (KV cache, sliding window) -> new latents -> frames (codec)
-> uint8 frames (+ metadata)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from argen import weights
from argen.device import resolve_device
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.models.video_codec import FrameCodec, load_codec_dir, to_uint8, to_unit
from argen.models.video_dit import VideoDiT, load_video_dir
from argen.models.video_text import CaptionVocab
from argen.samplers.block_diffusion import SCHEDULERS, context_frames_used, extend

MAX_FRAMES = 10_000
DEFAULT_CONTEXT = 16  # frames kept in the KV cache when neither the request nor the model's config says


@dataclass
class VideoRequest:
    prompt: str | None = None
    clip: np.ndarray | None = None  # (T, H, W, 3) uint8 at the model's size and frame rate: the start to extend
    clip_name: str | None = None  # for the metadata
    frames: int = 32  # new frames to generate
    steps: int = 20
    scheduler: str = "flow-euler"
    context: int | None = None  # frames kept in the KV cache; None: the model's default (config.json "sampling")
    sink: int = 0  # first frames always kept
    cond_noise: float = 0.0
    cfg: float | None = None  # guidance on the caption; None: the model's default (config.json "sampling")
    block_frames: int | None = None
    seed: int | None = None
    only_new: bool = False

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.frames <= MAX_FRAMES, f"--frames must be in [1, {MAX_FRAMES}], got {self.frames}", "e.g. --frames 32"),
            (1 <= self.steps <= 1000, f"--steps must be in [1, 1000], got {self.steps}", "e.g. --steps 20"),
            (self.scheduler in SCHEDULERS, f"unknown --scheduler {self.scheduler!r}", f"use one of: {', '.join(SCHEDULERS)}"),
            (self.context is None or self.context >= 1, f"--context must be at least 1 frame, got {self.context}", "e.g. --context 16"),
            (0 <= self.sink < (self.context or MAX_FRAMES), f"--sink must be in [0, --context), got {self.sink}", "e.g. --sink 2"),
            (0.0 <= self.cond_noise < 1.0, f"--cond-noise must be in [0, 1), got {self.cond_noise}", "e.g. --cond-noise 0.05"),
            (self.cfg is None or 0.0 <= self.cfg <= 50.0, f"--cfg must be in [0, 50], got {self.cfg}", "e.g. --cfg 2 (1 disables)"),
        ]
        for ok, msg, hint in checks:
            if not ok:
                raise UsageError(msg, hint=hint)
        if self.seed is None:
            self.seed = random.randrange(2**31)


@dataclass
class VideoOutput:
    frames: np.ndarray  # (T, H, W, 3) uint8: the clip's frames (unless only_new) then the new ones
    new_frames: int
    fps: float
    seed: int
    codec_seconds: float
    denoise_seconds: float
    metadata: dict[str, Any] = field(default_factory=dict)


class VideoPipeline:
    """``VideoPipeline.from_pretrained("bouncing-video")(VideoRequest("a red circle", frames=32))``."""

    modality = "video"

    def __init__(self, model: VideoDiT, codec: FrameCodec, vocab: CaptionVocab, fps: float,
                 ref: weights.ModelRef | None = None, device: torch.device | str = "cpu",
                 sampling: dict[str, float] | None = None, data: dict[str, Any] | None = None) -> None:
        self.model, self.codec, self.vocab, self.fps, self.ref = model, codec, vocab, fps, ref
        self.device = torch.device(device)
        self.cfg_default = float((sampling or {}).get("cfg_scale", 1.0))
        self.context_default = int((sampling or {}).get("context", DEFAULT_CONTEXT))  # frames its sampling keeps
        self.collide = bool((data or {}).get("collide", False))  # trained on objects that bounce off each other

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, device: str = "auto") -> "VideoPipeline":
        ref = weights.resolve(name_or_path or weights.default_model("video"), "video")
        model, meta = load_video_dir(ref.path)
        if meta.get("modality") != "video":
            raise ArgenError(f"{ref.name} is not a video model", hint="pick a video model (see `argen models`)")
        codec, _ = load_codec_dir(ref.path / meta.get("codec", "codec"))
        dev = resolve_device(device)
        vocab = CaptionVocab(meta.get("vocab"), model.cfg.prompt_len)
        return cls(model.to(dev), codec.to(dev), vocab, float(meta.get("fps", 8)), ref, dev, meta.get("sampling"),
                   meta.get("data"))

    @property
    def name(self) -> str:
        return self.ref.name if self.ref else "in-memory"

    @property
    def size(self) -> int:
        return self.codec.cfg.image_size

    def __call__(self, req: VideoRequest, on_progress: Callable[[int, float, float], None] | None = None) -> VideoOutput:
        """Generate; ``on_progress(frames done, codec seconds, denoise seconds)`` after each block."""
        fb = self.model.cfg.block_frames
        n_ctx = self.context_default if req.context is None else req.context
        if req.sink >= n_ctx:
            raise UsageError(f"--sink must be in [0, --context), got {req.sink} with a {n_ctx}-frame context",
                             hint="e.g. --sink 2")
        if req.block_frames is not None and req.block_frames != fb:
            raise UsageError(f"--block-frames {req.block_frames}: this model was trained with {fb}-frame blocks",
                             hint=f"leave it out or pass --block-frames {fb}")
        # 1. caption -> ids (no caption: guidance has nothing to push towards)
        text = self.vocab.encode_batch([req.prompt]).to(self.device)  # (1, P)
        cfg = 1.0 if req.prompt is None else (self.cfg_default if req.cfg is None else req.cfg)
        gen = torch.Generator(self.device).manual_seed(req.seed)
        # 2. the clip -> latents (only what the window will read: the sink and the latest frames)
        t0 = time.perf_counter()
        context = None
        if req.clip is not None and len(req.clip):
            used = context_frames_used(len(req.clip), fb, n_ctx, req.sink)  # a long clip: only its window
            context = self.codec.encode(to_unit(req.clip[used][None]).to(self.device))  # (1, T, C, h, w)
        codec_s = time.perf_counter() - t0
        # 3. block diffusion through the KV cache
        done, t1 = 0, time.perf_counter()

        def progress(block: torch.Tensor) -> None:
            nonlocal done
            done = min(req.frames, done + block.shape[1])
            if on_progress is not None:
                on_progress(done, codec_s, time.perf_counter() - t1)

        latents = extend(self.model, text, context, req.frames, steps=req.steps, scheduler=req.scheduler,
                         context_frames=n_ctx, sink_frames=req.sink, cond_noise=req.cond_noise,
                         cfg_scale=cfg, generator=gen, on_block=progress)
        denoise_s = time.perf_counter() - t1
        # 4. latents -> frames
        t2 = time.perf_counter()
        new = np.concatenate([to_uint8(self.codec.decode(latents[:, i:i + 64]))[0] for i in range(0, latents.shape[1], 64)])
        codec_s += time.perf_counter() - t2
        # 5. assemble, with the record of how it was made
        frames = new if (req.only_new or req.clip is None) else np.concatenate([req.clip, new])
        meta = build_metadata(modality="video", model=self.name, model_sha256=weights.digest(self.ref) if self.ref else None,
                              prompt=req.prompt, extend=req.clip_name, seed=req.seed, frames=req.frames,
                              steps=req.steps, scheduler=req.scheduler, context=n_ctx, sink=req.sink,
                              cond_noise=req.cond_noise, cfg=cfg, block_frames=fb, fps=self.fps, only_new=req.only_new or None)
        return VideoOutput(frames, len(new), self.fps, req.seed, codec_s, denoise_s, meta)
