"""SkyReels-V2 diffusion forcing, Wan2.1-T2V and Self-Forcing on argen's engine: the Python API.

    pipe = SkyReelsVideo.from_pretrained("SkyReels-V2-DF-1.3B-540P-Diffusers", device="cuda", dtype="bfloat16")
    videos = pipe.generate("a red fox runs through snow", seeds=[1, 2], frames=80, clip=frames)

A folder is a diffusers pipeline folder (``model_index.json``, ``transformer/``, ``vae/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``); its family comes from ``model_index.json``
(:func:`~argen.modalities.video.skyreels.config.matches`). Self-Forcing is a Wan2.1-T2V-1.3B
folder plus its checkpoint (``weights=``), recognised by the checkpoint's content.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from argen.engine.device import resolve_device, resolve_dtype
from argen.errors import ArgenError, UsageError
from argen.modalities.video.skyreels.components import (
    TextEncoder,
    VideoVAE,
    load_scheduler,
)
from argen.modalities.video.skyreels.config import FAMILIES, Family, matches, read_json
from argen.modalities.video.skyreels.convert import (
    load_transformer,
    self_forcing_state_dict,
)
from argen.modalities.video.skyreels.sampler import BlockDone, Sampler, sample_window
from argen.modalities.video.skyreels.schedule import (
    SelfForcingSchedule,
    UniPCStepper,
    Window,
    plan_windows,
)

log = logging.getLogger("argen.skyreels")
MAX_FRAMES = 10_000

# the negative prompt of SkyReels-V2's generate_video_df.py and of Wan2.1's shared_config.py
# (sample_neg_prompt), used when guidance is on and the caller gives none
NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，"
            "残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，"
            "三条腿，背景人很多，倒着走")


@dataclass
class Settings:
    """Everything one generation uses (the family's defaults, then the caller's overrides)."""

    steps: int
    cfg: float
    block: int
    ar_step: int
    window: int  # video frames per window (base_num_frames)
    overlap: int  # video frames of history every continuation starts from
    addnoise: float
    shift: float | None
    negative_prompt: str


@dataclass
class Plan:
    """The latent-frame layout of a request: ``frames`` new video frames (after rounding),
    ``windows`` over the latent video (history latents first when extending)."""

    frames: int
    windows: list[Window]
    history: int  # latent frames from the clip
    note: str | None  # set when frames were rounded up


class SkyReelsVideo:
    """Text-to-video and clip extension with a Wan-backbone model (see module docstring)."""

    def __init__(self, family: Family, transformer, vae: VideoVAE, text: TextEncoder, scheduler, folder: Path,
                 device: torch.device) -> None:
        self.family, self.transformer, self.vae, self.text = family, transformer, vae, text
        self.scheduler, self.folder, self.device = scheduler, folder, device
        self.sf = SelfForcingSchedule() if family.name == "self-forcing" else None

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "auto", dtype: str | torch.dtype = "auto",
                        weights: str | Path | None = None) -> SkyReelsVideo:
        """Load a diffusers folder; ``weights``: a Self-Forcing checkpoint to run on a Wan folder."""
        folder = Path(folder)
        index = read_json(folder / "model_index.json")
        name = matches(index)
        if name is None:
            raise ArgenError(f"{folder} is not a SkyReels-V2 diffusion-forcing or Wan2.1 text-to-video folder "
                             f"(model_index.json names {index.get('_class_name')!r})",
                             hint="pass a diffusers folder such as Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers")
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev) if isinstance(dtype, str) else dtype
        sd = None
        if weights is not None:
            if name != "wan2.1-t2v":
                raise ArgenError("Self-Forcing weights run on a Wan2.1-T2V-1.3B folder",
                                 hint="pass the Wan-AI/Wan2.1-T2V-1.3B-Diffusers folder with them")
            sd, name = self_forcing_state_dict(weights), "self-forcing"
        transformer = load_transformer(folder / "transformer", dt, dev, sd)
        if name == "self-forcing":
            transformer.cfg.time_f64 = True  # the original Wan code's sinusoid (Self-Forcing's wan/modules/model.py)
        vae = VideoVAE(folder / "vae", dev)
        text = TextEncoder(folder, dev, dt)
        return cls(FAMILIES[name], transformer, vae, text, load_scheduler(folder / "scheduler"), folder, dev)

    # --- what the CLI shows and checks ---------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """(height, width) the model was trained at; clips must be resized and cropped to it."""
        return self.family.size

    @property
    def fps(self) -> float:
        return self.family.fps

    @property
    def frame_group(self) -> int:
        """Video frames per latent frame (the VAE's temporal factor): a text-to-video clip has
        ``k * frame_group + 1`` frames, an extension adds multiples of ``frame_group * block``."""
        return self.vae.temporal

    @property
    def overlap(self) -> int:
        """Video frames of a clip the model continues from (its last ``overlap`` frames)."""
        return self.family.overlap

    @property
    def defaults(self) -> dict[str, Any]:
        f = self.family
        return {"steps": f.steps, "cfg": f.cfg, "block": f.block, "ar_step": f.ar_step, "window": f.window,
                "overlap": f.overlap, "addnoise": f.addnoise, "shift": f.shift, "fps": f.fps, "size": f.size,
                "causal": f.causal, "gpu_memory": f.gpu_memory}

    def cache_bytes(self, rows: int, size: tuple[int, int] | None = None, window: int | None = None) -> int:
        """Memory of the causal KV cache: keys and values of every layer for every token of a
        window, ``rows`` sequences (seeds, doubled by guidance), in the transformer's dtype.
        SkyReels-V2-DF-1.3B at 544x960, 97-frame windows, guidance, bfloat16: 18.8 GB a seed."""
        h, w = size or self.size
        c = self.transformer.cfg
        step = self.vae.spatial * c.patch[1]
        frames = ((window or self.family.window) - 1) // self.frame_group + 1
        tokens = frames * (h // step) * (w // step)
        return c.layers * 2 * rows * c.dim * tokens * self.transformer.dtype.itemsize

    def settings(self, **over: Any) -> Settings:
        """The family's defaults with the non-None ``over`` values; bad values raise UsageError."""
        f = self.family
        s = Settings(f.steps, f.cfg, f.block, f.ar_step, f.window, f.overlap, f.addnoise, f.shift,
                     NEGATIVE if f.cfg > 1 else "")
        s = dataclasses.replace(s, **{k: v for k, v in over.items() if v is not None})
        g = self.frame_group
        checks = [(1 <= s.steps <= 1000, f"steps must be in [1, 1000], got {s.steps}", "e.g. --steps 30"),
                  (0 <= s.cfg <= 50, f"cfg must be in [0, 50], got {s.cfg}", "e.g. --cfg 6 (1 disables guidance)"),
                  (s.block >= 1 and s.ar_step >= 0, f"block {s.block} / ar_step {s.ar_step} out of range", "block >= 1, ar_step >= 0"),
                  ((s.window - 1) % g == 0 and s.window > g, f"window {s.window} is not {g}k+1 frames", "e.g. 97"),
                  ((s.overlap - 1) % g == 0 or not f.causal, f"overlap {s.overlap} is not {g}k+1 frames", "e.g. 17"),
                  (0 <= s.addnoise <= 1000, f"addnoise must be in [0, 1000], got {s.addnoise}", "e.g. 20")]
        if f.causal:
            lw, lo = (s.window - 1) // g + 1, (s.overlap - 1) // g + 1
            checks += [(lo < lw, f"overlap {s.overlap} frames leaves no room in a {s.window}-frame window", "lower the overlap"),
                       (lw % s.block == 0 and lo % s.block == 0,
                        f"window ({lw} latent frames) and overlap ({lo}) must be multiples of the {s.block}-frame causal block",
                        "e.g. window 97, overlap 17, block 5 (or block 1)")]
        if self.sf is not None:
            checks.append((s.steps == len(self.sf.timesteps) and s.cfg <= 1,
                           f"Self-Forcing samples with {len(self.sf.timesteps)} fixed steps and no guidance",
                           "leave --steps and --cfg at their defaults"))
        for ok, msg, hint in checks:
            if not ok:
                raise UsageError(msg, hint=hint)
        return s

    def check_size(self, size: tuple[int, int]) -> None:
        h, w = size
        step = self.vae.spatial * self.transformer.cfg.patch[1]
        limit = self.transformer.cfg.rope_max_seq_len * step
        if h % step or w % step or not (step <= h <= limit and step <= w <= limit):
            raise UsageError(f"{self.family.name} cannot take {w}x{h} frames: width and height must be multiples "
                             f"of {step} up to {limit}", hint=f"its native size is {self.size[1]}x{self.size[0]}")

    def plan(self, frames: int, clip_frames: int | None = None, settings: Settings | None = None) -> Plan:
        """Round ``frames`` (new frames) up to what the VAE's grouping and the causal blocks allow,
        and lay out the windows. Raises UsageError for a clip shorter than the overlap, a
        non-causal model asked to extend, or more frames than a non-causal model makes at once."""
        s = settings or self.settings()
        g, blk = self.frame_group, s.block
        if not 1 <= frames <= MAX_FRAMES:
            raise UsageError(f"frames must be in [1, {MAX_FRAMES}], got {frames}", hint="e.g. --frames 97")
        base = (s.window - 1) // g + 1
        if clip_frames is not None:
            if not self.family.causal:
                raise UsageError(f"{self.family.name} generates whole clips and cannot extend one",
                                 hint="use a diffusion-forcing model (skyreels-v2-df) or Self-Forcing weights")
            if clip_frames < s.overlap:
                raise UsageError(f"the clip has {clip_frames} frames; {self.family.name} continues from its last {s.overlap}",
                                 hint=f"pass a clip of at least {s.overlap} frames")
            hist = (s.overlap - 1) // g + 1
            new = -(-frames // (g * blk)) * blk  # latent frames: whole blocks
            total, out = hist + new, new * g
        else:
            hist = 0
            lat = -(-max(frames - 1, 0) // g) + 1  # 4k+1 frames -> k+1 latent frames
            lat = -(-lat // blk) * blk
            total, out = lat, (lat - 1) * g + 1
            if not self.family.causal and total > base:
                raise UsageError(f"{self.family.name} makes at most {s.window} frames at once, asked for {frames}",
                                 hint=f"ask for at most {s.window} frames, or use a diffusion-forcing model")
        note = None if out == frames else (f"{frames} frames rounded up to {out}: {self.family.name} makes "
                                           + (f"{g * blk} frames a block" if clip_frames is not None else f"{g}k+1 frames"
                                              + (f" in blocks of {blk} latent frames" if blk > 1 else "")))
        windows = plan_windows(total, base, (s.overlap - 1) // g + 1 if self.family.causal else 0, hist)
        return Plan(out, windows, hist, note)

    # --- the stages ---------------------------------------------------------------------------
    def sampler(self, s: Settings) -> Sampler:
        if self.sf is not None:
            return Sampler(self.sf.timesteps, self.sf.stepper, s.ar_step, s.block, 1.0, s.addnoise)
        sched = load_scheduler(self.folder / "scheduler", s.shift)
        sched.set_timesteps(s.steps)
        in_place = self.family.name == "skyreels-v2-df"  # see UniPCStepper: each reference's own update
        return Sampler(sched.timesteps, lambda: UniPCStepper(sched, in_place), s.ar_step, s.block, s.cfg, s.addnoise)

    @torch.inference_mode()
    def sample(self, prompt: str, seeds: list[int], plan: Plan, s: Settings, size: tuple[int, int],
               history: torch.Tensor | None = None, causal_cache: bool = True,
               on_block: Callable[[BlockDone], None] | None = None) -> torch.Tensor:
        """Latents (B, C, L, h, w) of the whole video at ``size`` (H, W) (the clip's history
        latents (1, C, P, h, w) first when extending)."""
        if causal_cache and s.block <= 1:
            raise UsageError("the causal cache needs block-causal attention (causal block > 1)",
                             hint="set a causal block size, e.g. 5, or turn the cache off")
        sp = self.sampler(s)
        rows = [prompt] * len(seeds) + ([s.negative_prompt] * len(seeds) if sp.guided else [])
        text_kv = self.transformer.text_context(self.text(rows).to(self.device))
        gens = [torch.Generator().manual_seed(int(x)) for x in seeds]
        fps = None
        if self.transformer.cfg.inject_sample_info:  # diffusers: class 0 at 16 fps, 1 otherwise
            fps = torch.full((len(rows),), 0 if self.fps == 16 else 1, dtype=torch.long, device=self.device)
        c, sh = self.transformer.cfg.in_channels, self.vae.spatial
        shape = (c, size[0] // sh, size[1] // sh)
        total_new = sum(w.frames - w.history for w in plan.windows)
        video = history.expand(len(seeds), -1, -1, -1, -1) if history is not None else None
        done = 0
        for n, win in enumerate(plan.windows):
            hist = None if win.history == 0 else video[:, :, -win.history:]

            def event(e: BlockDone) -> None:
                nonlocal done
                done += e.latents.shape[2]
                if on_block is not None:
                    on_block(dataclasses.replace(e, done=done, total=total_new))

            lat = sample_window(self.transformer, text_kv, hist, win.frames, sp, gens, use_cache=causal_cache, fps=fps,
                                latent_shape=shape, on_block=event, window=n, start=win.start)
            video = lat if video is None else torch.cat([video, lat[:, :, win.history:]], dim=2)
        return video

    def generate(self, prompt: str, seeds: list[int], frames: int, steps: int | None = None, cfg: float | None = None,
                 clip: np.ndarray | None = None, causal_cache: bool | None = None,
                 on_block: Callable[[BlockDone], None] | None = None, **options: Any) -> list[np.ndarray]:
        """New frames, one uint8 array (frames, H, W, 3) per seed.

        ``clip``: uint8 (T, H, W, 3) at :attr:`size` and :attr:`fps` to continue (its last
        :attr:`overlap` frames are the history; the result holds only the new frames).
        ``causal_cache``: None uses it whenever attention is block-causal. ``options``: any
        :class:`Settings` field (block, ar_step, window, overlap, addnoise, shift, negative_prompt)
        and ``size`` (height, width) for text-to-video at another resolution.
        """
        size = tuple(options.pop("size", None) or self.size)
        s = self.settings(steps=steps, cfg=cfg, **options)
        if clip is not None:
            clip = np.asarray(clip)
            if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
                raise UsageError(f"the clip must be uint8 frames (T, H, W, 3), got {clip.dtype} {clip.shape}",
                                 hint="decode it with argen.io.video.read_video")
            size = clip.shape[1:3]
        self.check_size(size)
        if not seeds:
            raise UsageError("no seeds given", hint="pass at least one seed")
        plan = self.plan(frames, None if clip is None else len(clip), s)
        if plan.note:
            log.warning(plan.note)
        history = None
        t0 = time.perf_counter()
        if clip is not None:
            history = self.vae.encode(clip[len(clip) - s.overlap:]).to(self.device)  # (1, C, P, h, w)
        cache = s.block > 1 if causal_cache is None else causal_cache
        latents = self.sample(prompt, seeds, plan, s, size, history, cache, on_block)
        skip = 0 if clip is None else s.overlap  # decoded history frames (the clip's own tail, re-made)
        out = []
        for row in latents:
            x = self.vae.decode(row[None])[skip:skip + plan.frames]
            out.append(np.round(x * 255.0).astype(np.uint8))
        log.info("generated %d frames x %d seeds in %.1f s", plan.frames, len(seeds), time.perf_counter() - t0)
        return out
