"""`argen video`: every flag once (see argen/modalities/spec.py)."""

from __future__ import annotations

from typing import ClassVar, Literal

from argen.modalities.spec import GenerationSpec, flag

MAX_FRAMES = 10_000


class VideoSpec(GenerationSpec):
    modality: ClassVar[str] = "video"
    prompt_help: ClassVar[str] = "The objects, e.g. 'a red circle and a blue square' (repeat for several prompts)."

    missing_prompt_message: ClassVar[str] = "give --prompt, --extend or both"

    @classmethod
    def prompt_needed(cls, values: dict) -> bool:
        return not values.get("extend")

    extend: str | None = flag(None, "--extend", metavar="CLIP",
                              help="Continue this clip (cropped and resized to the model's size, resampled to its frame rate).")
    frames: int = flag(32, "--frames", help="New frames to generate.", ge=1, le=MAX_FRAMES)
    steps: int = flag(20, "--steps", help="Denoising steps per block.", ge=1, le=1000)
    scheduler: Literal["flow-euler", "ddim"] = flag("flow-euler", "--scheduler", metavar="flow-euler|ddim",
                                                    help="diffusers scheduler for each block.")
    context: int | None = flag(None, "--context", ge=1, le=MAX_FRAMES,
                               help="Frames kept in the KV cache (older ones slide out; default: the model's).")
    sink: int = flag(0, "--sink", help="First frames always kept in the cache (attention sink).", ge=0, le=MAX_FRAMES)
    cond_noise: float = flag(0.0, "--cond-noise", help="Light noise on context frames (flow time in [0, 1)).", ge=0, lt=1)
    block_frames: int | None = flag(None, "--block-frames", help="Frames per block (must match the model's).", ge=1, le=1024)
    fps: float | None = flag(None, "--fps", help="Frame rate written to the MP4 (default: the model's).", gt=0, le=240)
    only_new: bool = flag(False, "--only-new", help="Write only the generated frames, not the clip given to --extend.")
