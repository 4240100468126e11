"""`argen audio`: every flag once (see argen/modalities/spec.py)."""

from __future__ import annotations

from typing import ClassVar

from argen.modalities.spec import GenerationSpec, flag

MAX_SECONDS = 3600.0


class AudioSpec(GenerationSpec):
    modality: ClassVar[str] = "audio"
    prompt_help: ClassVar[str] = ("What to play, e.g. 'square C4 E4 G4 C5 at 120 bpm' for the bundled model, or "
                                  "'lo-fi beat with piano' for MusicGen (repeat for several prompts).")

    missing_prompt_message: ClassVar[str] = "give --prompt, --extend or both"

    @classmethod
    def prompt_needed(cls, values: dict) -> bool:
        return not values.get("extend")

    extend: str | None = flag(None, "--extend", metavar="CLIP", help="Continue this clip (any file ffmpeg reads).")
    seconds: float | None = flag(None, "--seconds", gt=0, le=MAX_SECONDS,
                                 help="Seconds of new audio (default: the prompted melody's length, 4 after a clip "
                                      "without a prompt; MusicGen: 8). MusicGen past its 30 s window continues in "
                                      "windows 18 s apart, each prompted with the last 12 s (audiocraft's stride).")
    only_new: bool = flag(False, "--only-new", help="Write only the new audio, not the clip given to --extend.")
    melody: str | None = flag(None, "--melody", metavar="TUNE",
                              help="A tune whose chroma conditions a MusicGen melody model (any file ffmpeg reads).")
    preview: str | None = flag(None, "--preview", metavar="PNG", help="Also write a spectrogram picture; {i} and {seed} "
                                                                       "are filled in.")
