"""`argen video`: every flag once (see argen/modalities/spec.py).

Flags left at None take the model's default: the bundled bouncing-video model's, or the
published settings of a SkyReels-V2 / Wan2.1 / Self-Forcing family (each flag's help says which).
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import field_validator

from argen.modalities.spec import GenerationSpec, flag

MAX_FRAMES = 10_000


class VideoSpec(GenerationSpec):
    modality: ClassVar[str] = "video"
    prompt_help: ClassVar[str] = ("The caption, e.g. 'a red circle and a blue square' for the bundled model, any text for "
                                  "SkyReels/Wan (repeat for several prompts).")

    missing_prompt_message: ClassVar[str] = "give --prompt, --extend or both"
    preview_suffixes: ClassVar[tuple[str, ...]] = (".png", ".gif", ".webp")

    @classmethod
    def prompt_needed(cls, values: dict) -> bool:
        return not values.get("extend")

    extend: str | None = flag(None, "--extend", metavar="CLIP",
                              help="Continue this clip (cropped and resized to the model's size, resampled to its frame rate).")
    frames: int | None = flag(None, "--frames", ge=1, le=MAX_FRAMES,
                              help="New frames to generate (default: 32 for the bundled model, one window for SkyReels/Wan). "
                                   "Past a window, by overlapped continuation; a count the model cannot make is rounded up "
                                   "(said on stderr).")
    steps: int | None = flag(None, "--steps", ge=1, le=1000,
                             help="Denoising steps per block (default: the model's: 20 bundled, 30 SkyReels-V2-DF, 50 Wan2.1, "
                                  "4 Self-Forcing).")
    scheduler: Literal["flow-euler", "ddim"] | None = flag(
        None, "--scheduler", metavar="flow-euler|ddim",
        help="diffusers scheduler for each block of the bundled model (default: flow-euler; SkyReels/Wan use their folder's).")
    context: int | None = flag(None, "--context", ge=1, le=MAX_FRAMES,
                               help="Frames the model attends to: the bundled model's KV-cache window (older ones slide "
                                    "out), or a SkyReels/Self-Forcing window (4k+1 frames; 97/81 by default, smaller needs "
                                    "less memory).")
    overlap: int | None = flag(None, "--overlap", ge=1, le=MAX_FRAMES,
                               help="Frames of the clip (or the previous window) a SkyReels/Self-Forcing window continues "
                                    "from (default: 17 / 33).")
    sink: int = flag(0, "--sink", help="First frames always kept in the cache (attention sink).", ge=0, le=MAX_FRAMES)
    cond_noise: float | None = flag(None, "--cond-noise", ge=0, lt=1,
                                    help="Light noise on context frames (flow time in [0, 1); default: 0, SkyReels-V2-DF "
                                         "0.02, its addnoise_condition 20).")
    block_frames: int | None = flag(None, "--block-frames", ge=1, le=1024,
                                    help="Frames per block: the bundled model's must match its training; SkyReels: frames "
                                         "per causal block, a multiple of 4 (default 20; 4 attends to the whole window).")
    ar_step: int | None = flag(None, "--ar-step", ge=0, le=1000,
                               help="SkyReels diffusion forcing: steps each causal block lags the one before (0: all "
                                    "blocks together; default 5).")
    causal_cache: bool | None = flag(None, "--causal-cache/--no-causal-cache",
                                     help="Keep finished frames' keys and values instead of recomputing them (default: on "
                                          "wherever attention is block-causal; it needs GPU memory, see above).")
    negative_prompt: str | None = flag(None, "--negative-prompt", metavar="TEXT",
                                       help="What guidance steers away from (SkyReels/Wan; default: the models' own).")
    size: str | None = flag(None, "--size", metavar="WxH",
                            help="Frame size for SkyReels/Wan, multiples of 16 (default: 960x544 SkyReels-V2, 832x480 "
                                 "Wan2.1 / Self-Forcing); --extend clips are resized to it.")
    fps: float | None = flag(None, "--fps", help="Frame rate written to the MP4 (default: the model's).", gt=0, le=240)
    only_new: bool = flag(False, "--only-new", help="Write only the generated frames, not the clip given to --extend.")
    preview: str | None = flag(None, "--preview", metavar="PNG|GIF|WEBP",
                               help="Also write a preview: .png a contact sheet (a row of frames per second), .gif or "
                                    ".webp an animation; {i} and {seed} are filled in.", recipe=False)

    @field_validator("size")
    @classmethod
    def _size(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[1-9]\d{0,4}x[1-9]\d{0,4}", v):
            raise ValueError("give the size as WIDTHxHEIGHT, e.g. 960x544")
        return v

    def frame_size(self) -> tuple[int, int] | None:
        """``--size`` as (height, width), or None."""
        if self.size is None:
            return None
        w, h = self.size.split("x")
        return int(h), int(w)
