"""`argen video` with the Wan-backbone families: SkyReels-V2 diffusion forcing (text to video,
and ``--extend`` block by block), Wan2.1-T2V (whole clips) and Self-Forcing (causal, cached).

The model work is :class:`~argen.modalities.video.skyreels.pipeline.SkyReelsVideo`; this module
maps the video flags onto it (``--context`` is the window, ``--block-frames`` the causal block in
video frames, ``--cond-noise`` the history noise as a flow time), checks every request before
any work (the clip is read, the frame count planned and rounded), and writes MP4s.

A model is a diffusers pipeline folder (``model_index.json``), or for Self-Forcing a folder
whose ``config.json`` reads ``{"family": "self-forcing", "base": <Wan2.1-T2V-1.3B name, hub
id or folder>, "checkpoint": <its self_forcing_dmd.pt, relative to the folder>}`` (what
``argen weights pull self-forcing`` writes; see :func:`convert_files`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from argen.checkpoints import resolve as weights
from argen.errors import ArgenError, UsageError
from argen.io.metadata import build_metadata
from argen.modalities.base import OnProgress, Output, Pipeline, Row, refuse_compile, refuse_options
from argen.modalities.video.pipeline import VideoOutput
from argen.modalities.video.skyreels.config import DF_PIPELINES, WAN_PIPELINES
from argen.modalities.video.spec import VideoSpec


def require_libraries() -> None:
    """The umT5 text encoder runs through transformers (the `video` extra) and the VAE through
    diffusers' ``AutoencoderKLWan`` (diffusers 0.35 added the SkyReels-V2 classes): one line
    naming what to install when either is missing."""
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        raise ArgenError("SkyReels-V2 and Wan2.1 models need transformers for their umT5 text encoder",
                         hint="pip install 'argen[video]'")
    try:
        from diffusers import AutoencoderKLWan, SkyReelsV2Transformer3DModel  # noqa: F401
    except ImportError:
        raise ArgenError("SkyReels-V2 and Wan2.1 models need diffusers 0.35 or later",
                         hint="pip install -U 'diffusers>=0.35'") from None


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """diffusers' and transformers' loading chatter (progress bars, advice to install accelerate)
    kept off stderr, which carries argen's own progress."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    levels = dlog.get_verbosity(), tlog.get_verbosity()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        dlog.set_verbosity(levels[0])
        tlog.set_verbosity(levels[1])
        tlog.enable_progress_bar()


class SkyReelsPipeline(Pipeline):
    """``argen.load("skyreels-v2-df-1.3b")("a fox runs", frames=97, seed=0)``; ``extend=`` a clip to continue it."""

    modality = "video"
    default_batch_size = 1  # seeds denoised together: memory grows with each (see --help)
    sampling_flags = {"cfg": "cfg"}

    def __init__(self, model, ref=None) -> None:
        from argen.modalities.video.skyreels.pipeline import SkyReelsVideo

        self.model: SkyReelsVideo = model
        self.ref = ref
        self._job: dict[str, Any] = {}

    @classmethod
    def matches(cls, config: dict[str, Any] | None, path: Path) -> bool:
        if not config:
            return False
        return config.get("family") == "self-forcing" or config.get("_class_name") in DF_PIPELINES + WAN_PIPELINES

    @classmethod
    def from_ref(cls, ref, config, device: str = "auto", dtype: str = "auto", compile: bool = False,
                 **options: Any) -> SkyReelsPipeline:
        from argen.modalities.video.skyreels.pipeline import SkyReelsVideo

        refuse_options(options, "video")
        refuse_compile(compile, ref.name, "through a diffusers pipeline")
        require_libraries()
        folder, checkpoint = ref.path, None
        if config.get("family") == "self-forcing":
            folder, checkpoint = self_forcing_parts(ref.path, config)
        with quiet_libraries():
            model = SkyReelsVideo.from_pretrained(folder, device=device, dtype=dtype, weights=checkpoint)
        return cls(model, ref)

    @property
    def name(self) -> str:
        return self.ref.name if self.ref is not None else self.model.family.name

    def sampling(self, spec: VideoSpec) -> dict[str, Any]:
        return {"cfg": spec.cfg}

    # --- checking a request (before any work) --------------------------------------------------
    def check(self, spec: VideoSpec) -> None:
        """Every flag against this family, the clip read at the model's size and frame rate, the
        frame count planned (rounded up with a note on stderr): one-line errors, nothing written."""
        from argen.console import log

        name, m, g = self.name, self.model, self.model.frame_group
        for flag, value in (("--temperature", spec.temperature), ("--top-k", spec.top_k), ("--top-p", spec.top_p)):
            if value is not None:
                raise UsageError(f"{flag} does not apply to {name}: a diffusion model denoises latents, it samples "
                                 "no tokens", hint="drop it; --steps and --cfg steer this model")
        if spec.scheduler is not None:
            raise UsageError(f"--scheduler is for the bundled model; {name} steps with its folder's scheduler",
                             hint="drop --scheduler")
        if spec.sink:
            raise UsageError(f"--sink does not apply to {name}: each window attends to all its frames",
                             hint="drop --sink; --overlap sets the frames a window continues from")
        if spec.only_new and spec.extend is None:
            raise UsageError("--only-new goes with --extend", hint="drop --only-new, or give a clip to --extend")
        fam = m.family
        if fam.name != "skyreels-v2-df":  # Wan2.1 attends to whole clips; Self-Forcing was trained on its blocks
            fixed = (("--ar-step", spec.ar_step, fam.ar_step), ("--block-frames", spec.block_frames, fam.block * g))
            for flag, value, own in fixed:
                if value is not None and value != own:
                    raise UsageError(f"{flag} {value}: {fam.name} samples with {own}" + (" (whole clips)" if not fam.causal else ""),
                                     hint=f"drop {flag}; diffusion forcing's block schedule is skyreels-v2-df's")
        if not fam.causal and spec.overlap is not None:
            raise UsageError(f"--overlap does not apply to {fam.name}: it makes one clip at once",
                             hint="drop --overlap, or use skyreels-v2-df or self-forcing to continue clips")
        if spec.block_frames is not None and spec.block_frames % g:
            raise UsageError(f"--block-frames {spec.block_frames}: {name} makes {g} frames per latent frame, so a "
                             f"causal block is a multiple of {g} frames", hint=f"e.g. --block-frames {4 * g}")
        for flag, value in (("--context", spec.context), ("--overlap", spec.overlap)):
            if value is not None and (value - 1) % g:
                raise UsageError(f"{flag} {value}: {name} takes {g}k+1 frames here", hint=f"e.g. {flag} {(value // g) * g + 1}")
        s = m.settings(steps=spec.steps, cfg=spec.cfg, window=spec.context, overlap=spec.overlap, ar_step=spec.ar_step,
                       block=None if spec.block_frames is None else spec.block_frames // g,
                       addnoise=None if spec.cond_noise is None else spec.cond_noise * 1000.0,
                       negative_prompt=spec.negative_prompt)
        cache = s.block > 1 if spec.causal_cache is None else spec.causal_cache
        if cache and s.block <= 1:
            raise UsageError(f"--causal-cache needs block-causal attention; {name} here attends to whole windows",
                             hint="drop --causal-cache, or set --block-frames to 8 or more on a diffusion-forcing model")
        size = spec.frame_size() or m.size
        m.check_size(size)
        clip = None
        if spec.extend is not None:
            from argen.io.video import read_video

            clip = read_video(spec.extend, size, m.fps)
        default = s.window if clip is None else s.window - s.overlap
        plan = m.plan(spec.frames or default, None if clip is None else len(clip), s)
        if plan.note and spec.frames is not None:
            log(f"Note: {plan.note}")
        self._job = {"settings": s, "size": size, "clip": clip, "plan": plan, "cache": cache,
                     "clip_name": Path(spec.extend).name if spec.extend is not None else None}

    def check_prompt(self, prompt: str | None) -> str | None:
        if prompt is not None and not prompt.strip():
            raise UsageError("the prompt is empty", hint="describe the video, or leave --prompt out to continue a clip")
        return prompt

    # --- generating ----------------------------------------------------------------------------
    def generate_batch(self, spec: VideoSpec, rows: list[Row], prepared: dict, sampling: dict[str, Any],
                       on_progress: OnProgress | None = None) -> list[VideoOutput]:
        """The rows' videos; rows that share a prompt are denoised together (a batch of seeds)."""
        if not self._job:
            self.check(spec)
        outs: list[VideoOutput] = []
        start = 0
        while start < len(rows):
            end = start + 1
            while end < len(rows) and rows[end].prompt == rows[start].prompt:
                end += 1
            outs += self._generate_group(spec, rows[start:end], on_progress)
            start = end
        return outs

    def _generate_group(self, spec: VideoSpec, rows: list[Row], on_progress: OnProgress | None) -> list[VideoOutput]:
        job, m = self._job, self.model
        s, plan, clip = job["settings"], job["plan"], job["clip"]
        g = m.frame_group

        def block_done(e) -> None:
            if on_progress is not None:
                on_progress(min(plan.frames, e.done * g), plan.frames, "frames")

        t0 = time.perf_counter()
        with quiet_libraries():
            videos = m.generate(rows[0].prompt or "", [r.seed for r in rows], plan.frames, clip=clip,
                                causal_cache=job["cache"], on_block=block_done, size=job["size"],
                                **{k: getattr(s, k) for k in ("steps", "cfg", "block", "ar_step", "window", "overlap",
                                                              "addnoise", "negative_prompt")})
        seconds = (time.perf_counter() - t0) / len(rows)
        h, w = job["size"]
        outs = []
        for row, new in zip(rows, videos):
            frames = new if (spec.only_new or clip is None) else np.concatenate([clip, new])
            meta = build_metadata(
                modality="video", model=self.name, model_sha256=weights.digest(self.ref) if self.ref else None,
                family=m.family.name, prompt=row.prompt, extend=job["clip_name"], seed=row.seed, frames=plan.frames,
                steps=s.steps, cfg=s.cfg, negative_prompt=s.negative_prompt or None, size=f"{w}x{h}",
                context=s.window, overlap=s.overlap if m.family.causal else None, block_frames=s.block * g,
                ar_step=s.ar_step if m.family.causal else None, cond_noise=s.addnoise / 1000.0 if s.addnoise else None,
                causal_cache=job["cache"], dtype=str(m.transformer.dtype).replace("torch.", ""), fps=m.fps,
                only_new=spec.only_new or None)
            outs.append(VideoOutput(row.index, row.seed, row.prompt, seconds, meta, frames=frames, new_frames=len(new),
                                    fps=spec.fps or m.fps, denoise_seconds=seconds))
        return outs

    def summary(self, outputs: list[Output]) -> str:
        if not outputs:
            return "no video"
        o = outputs[0]
        return (f"{o.new_frames} new frames ({len(o.frames)} written) in {o.seconds:.1f} s a video "
                f"({self.name}, {self.model.family.name}), seed {o.seed}")


def self_forcing_parts(folder: Path, config: dict[str, Any]) -> tuple[Path, Path]:
    """(the Wan2.1-T2V-1.3B folder, the checkpoint) named by a Self-Forcing ``config.json``."""
    base, ckpt = config.get("base"), config.get("checkpoint")
    if not isinstance(base, str) or not isinstance(ckpt, str):
        raise ArgenError(f"{folder / 'config.json'} names no base model and checkpoint",
                         hint='expected {"family": "self-forcing", "base": "wan2.1-t2v-1.3b", "checkpoint": "..."}')
    local = folder / base
    base_ref = weights.resolve(str(local) if local.exists() else base, "video")
    return base_ref.path, folder / ckpt


def convert_files(sources: list[Path], out: Path, name: str | None = None, base: str = "wan2.1-t2v-1.3b",
                  **options: Any) -> Path:
    """`argen weights pull self-forcing`: check the checkpoint holds a Self-Forcing generator
    (read with ``weights_only``) and write the ``config.json`` that runs it on ``base``."""
    from argen.io.atomic import write_text_atomic
    from argen.modalities.video.skyreels.convert import self_forcing_state_dict

    if options:
        raise UsageError(f"the self-forcing converter takes no {', '.join(sorted(options))}", hint="see weights/hub.yaml")
    ckpt = next((p for p in sources if p.suffix in (".pt", ".pth")), None)
    if ckpt is None:
        raise ArgenError("no Self-Forcing checkpoint among the files", hint="expected checkpoints/self_forcing_dmd.pt")
    self_forcing_state_dict(ckpt)  # refuses anything else, here rather than at every load
    out.mkdir(parents=True, exist_ok=True)
    rel = Path("..") / ckpt.relative_to(out.parent) if ckpt.is_relative_to(out.parent) else ckpt.resolve()
    cfg = {"family": "self-forcing", "modality": "video", "name": name, "base": base, "checkpoint": str(rel)}
    write_text_atomic(out / "config.json", json.dumps(cfg, indent=1) + "\n")
    return out
