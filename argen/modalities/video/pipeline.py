"""Video generation and continuation: caption -> word ids; clip -> frame latents (codec) ->
the engine's block-diffusion loop (KV cache, sliding window) -> new latents -> frames (codec)
-> uint8 frames (+ metadata)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from argen.checkpoints import resolve as weights
from argen.engine.device import resolve_device, resolve_dtype
from argen.engine.sampling.block_diffusion import context_frames_used, extend
from argen.errors import UsageError
from argen.io.metadata import build_metadata
from argen.modalities.base import OnProgress, Output, Pipeline, Row, refuse_compile, refuse_options
from argen.modalities.video.codec import FrameCodec, load_codec_dir, to_uint8, to_unit
from argen.modalities.video.dit import VideoDiT, load_video_dir
from argen.modalities.video.spec import VideoSpec
from argen.modalities.video.text import CaptionVocab

DEFAULT_CONTEXT = 16  # frames kept in the KV cache when neither the request nor the model's config says
# what the bundled model samples with when a flag is left out (the spec's None: "the model's default")
DEFAULTS = {"frames": 32, "steps": 20, "scheduler": "flow-euler", "cond_noise": 0.0}
# flags of the SkyReels/Wan families that this model has no use for
NOT_HERE = {"overlap": "--overlap", "ar_step": "--ar-step", "causal_cache": "--causal-cache", "negative_prompt": "--negative-prompt",
            "size": "--size"}


def bundled(spec: VideoSpec) -> VideoSpec:
    """``spec`` with the bundled model's defaults in place of the flags left out."""
    return spec.model_copy(update={k: v for k, v in DEFAULTS.items() if getattr(spec, k) is None})


@dataclass
class VideoOutput(Output):
    frames: np.ndarray | None = None  # (T, H, W, 3) uint8: the clip's frames (unless only_new) then the new ones
    new_frames: int = 0
    fps: float = 8.0
    codec_seconds: float = 0.0
    denoise_seconds: float = 0.0

    suffixes: ClassVar[tuple[str, ...]] = (".mp4",)
    preview_suffixes: ClassVar[tuple[str, ...]] = (".png", ".gif", ".webp")

    def write(self, path: Path) -> Path:
        from argen.io.video import write_mp4

        return write_mp4(path, self.frames, self.fps, self.metadata)

    def write_preview(self, path: Path) -> Path:
        """A contact sheet (.png: a row of frames per second) or an animation (.gif, .webp)."""
        from argen.io.video_preview import write_video_preview

        return write_video_preview(path, self.frames, self.fps, self.metadata)

    def record(self) -> dict[str, Any]:
        return {"seed": self.seed, "prompt": self.prompt, "frames": len(self.frames), "model": self.metadata.get("model")}


class VideoPipeline(Pipeline):
    """The bundled block-diffusion model: ``argen.load("bouncing-video")("a red circle", frames=32, seed=0)``."""

    modality = "video"
    default_batch_size = 1
    sampling_flags = {"cfg": "cfg"}

    def __init__(self, model: VideoDiT, codec: FrameCodec, vocab: CaptionVocab, fps: float,
                 ref: weights.ModelRef | None = None, device: torch.device | str = "cpu",
                 sampling: dict[str, float] | None = None, data: dict[str, Any] | None = None) -> None:
        self.model, self.codec, self.vocab, self.fps, self.ref = model, codec, vocab, fps, ref
        self.device = torch.device(device)
        self.cfg_default = float((sampling or {}).get("cfg_scale", 1.0))
        self.context_default = int((sampling or {}).get("context", DEFAULT_CONTEXT))  # frames its sampling keeps
        self.collide = bool((data or {}).get("collide", False))  # trained on objects that bounce off each other

    @classmethod
    def from_ref(cls, ref, config, device: str = "auto", dtype: str = "auto", compile: bool = False,
                 **options: Any) -> "VideoPipeline":
        refuse_options(options, "video")
        refuse_compile(compile, ref.name, "by block diffusion")
        model, meta = load_video_dir(ref.path)
        codec, _ = load_codec_dir(ref.path / meta.get("codec", "codec"))
        dev = resolve_device(device)
        vocab = CaptionVocab(meta.get("vocab"), model.cfg.prompt_len)
        return cls(model.to(device=dev, dtype=resolve_dtype(dtype, dev)), codec.to(dev), vocab, float(meta.get("fps", 8)),
                   ref, dev, meta.get("sampling"), meta.get("data"))

    def sampling(self, spec: VideoSpec) -> dict[str, Any]:
        return {"cfg": spec.cfg}

    @property
    def size(self) -> int:
        return self.codec.cfg.image_size

    def check(self, spec: VideoSpec) -> None:
        for flag, value in (("--temperature", spec.temperature), ("--top-k", spec.top_k), ("--top-p", spec.top_p)):
            if value is not None:
                raise UsageError(f"{flag} does not apply to {self.name}: a diffusion model denoises latents, it samples "
                                 "no tokens", hint="drop it; --steps and --cfg steer this model")
        for field, flag in NOT_HERE.items():
            if getattr(spec, field) is not None:
                raise UsageError(f"{flag} is for SkyReels/Wan models, not {self.name}",
                                 hint="drop it, or pick such a model with --model (see `argen models`)")
        fb = self.model.cfg.block_frames
        n_ctx = self.context_default if spec.context is None else spec.context
        if spec.sink >= n_ctx:
            raise UsageError(f"--sink must be in [0, --context), got {spec.sink} with a {n_ctx}-frame context",
                             hint="e.g. --sink 2")
        if spec.block_frames is not None and spec.block_frames != fb:
            raise UsageError(f"--block-frames {spec.block_frames}: this model was trained with {fb}-frame blocks",
                             hint=f"leave it out or pass --block-frames {fb}")
        if spec.only_new and spec.extend is None:
            raise UsageError("--only-new goes with --extend", hint="drop --only-new, or give a clip to --extend")
        from argen.io.video import read_video

        self._clip = read_video(spec.extend, self.size, self.fps) if spec.extend is not None else None
        self._clip_name = Path(spec.extend).name if spec.extend is not None else None

    def check_prompt(self, prompt: str | None) -> str | None:
        if prompt is not None:
            if not prompt.strip():
                raise UsageError("the prompt is empty", hint="give a caption, or leave --prompt out to continue a clip")
            self.vocab.encode(prompt)  # a caption outside the grammar fails before any work
        return prompt

    def generate_batch(self, spec: VideoSpec, rows: list[Row], prepared: dict, sampling: dict[str, Any],
                       on_progress: OnProgress | None = None) -> list[VideoOutput]:
        return [self.generate_one(spec, r, on_progress) for r in rows]

    def generate_one(self, spec: VideoSpec, row: Row, on_progress: OnProgress | None = None) -> VideoOutput:
        """One video; ``on_progress(frames done, frames, "frames")`` after each block."""
        spec = bundled(spec)
        fb = self.model.cfg.block_frames
        n_ctx = self.context_default if spec.context is None else spec.context
        clip = self._clip
        # 1. caption -> ids (no caption: guidance has nothing to push towards)
        text = self.vocab.encode_batch([row.prompt]).to(self.device)  # (1, P)
        cfg = 1.0 if row.prompt is None else (self.cfg_default if spec.cfg is None else spec.cfg)
        gen = torch.Generator(self.device).manual_seed(row.seed)
        # 2. the clip -> latents (only what the window will read: the sink and the latest frames)
        t0 = time.perf_counter()
        context = None
        if clip is not None and len(clip):
            used = context_frames_used(len(clip), fb, n_ctx, spec.sink)  # a long clip: only its window
            context = self.codec.encode(to_unit(clip[used][None]).to(self.device))  # (1, T, C, h, w)
        codec_s = time.perf_counter() - t0
        # 3. block diffusion through the KV cache
        done, t1 = 0, time.perf_counter()

        def progress(block: torch.Tensor) -> None:
            nonlocal done
            done = min(spec.frames, done + block.shape[1])
            if on_progress is not None:
                on_progress(done, spec.frames, "frames")

        latents = extend(self.model, text, context, spec.frames, steps=spec.steps, scheduler=spec.scheduler,
                         context_frames=n_ctx, sink_frames=spec.sink, cond_noise=spec.cond_noise,
                         cfg_scale=cfg, generator=gen, on_block=progress)
        denoise_s = time.perf_counter() - t1
        # 4. latents -> frames
        t2 = time.perf_counter()
        new = np.concatenate([to_uint8(self.codec.decode(latents[:, i:i + 64]))[0] for i in range(0, latents.shape[1], 64)])
        codec_s += time.perf_counter() - t2
        # 5. assemble, with the record of how it was made
        frames = new if (spec.only_new or clip is None) else np.concatenate([clip, new])
        meta = build_metadata(modality="video", model=self.name, model_sha256=weights.digest(self.ref) if self.ref else None,
                              prompt=row.prompt, extend=self._clip_name, seed=row.seed, frames=spec.frames,
                              steps=spec.steps, scheduler=spec.scheduler, context=n_ctx, sink=spec.sink,
                              cond_noise=spec.cond_noise, cfg=cfg, block_frames=fb, fps=self.fps,
                              only_new=spec.only_new or None)
        out = VideoOutput(row.index, row.seed, row.prompt, codec_s + denoise_s, meta, frames=frames, new_frames=len(new),
                          fps=spec.fps or self.fps, codec_seconds=codec_s, denoise_seconds=denoise_s)
        return out

    def summary(self, outputs: list[Output]) -> str:
        if not outputs:
            return "no video"
        o = outputs[0]
        return (f"{o.new_frames} new frames ({len(o.frames)} written) in {o.codec_seconds + o.denoise_seconds:.1f} s: "
                f"codec {o.codec_seconds:.1f} s, denoising {o.denoise_seconds:.1f} s ({self.name}), seed {o.seed}")
