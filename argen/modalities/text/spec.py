"""`argen text`: every flag once (see argen/modalities/spec.py)."""

from __future__ import annotations

from typing import ClassVar, Literal

from argen.modalities.spec import GenerationSpec, flag


class TextSpec(GenerationSpec):
    modality: ClassVar[str] = "text"
    prompt_file_mode: ClassVar[Literal["whole", "lines"]] = "whole"
    prompt_help: ClassVar[str] = "The text to continue (repeat for several prompts)."

    max_new_tokens: int = flag(500, "--max-new-tokens", help="Tokens to generate per sample.", ge=1, le=1_000_000)
    min_p: float | None = flag(None, "--min-p", help="Drop tokens below min-p x the top probability.", ge=0, lt=1)
    repetition_penalty: float = flag(1.0, "--repetition-penalty", help="CTRL penalty; 1 disables.", gt=0, le=100)
    stop: list[str] = flag([], "--stop", metavar="STR", help="Stop at this string (repeatable; \\n and \\t understood).")
    draft: str | None = flag(None, "--draft", metavar="MODEL", help="Speculative decoding with this draft model.")
    lookup: int | None = flag(None, "--lookup", metavar="N", help="Speculative decoding with prompt-lookup n-grams up to N.",
                              ge=1, le=32)
    draft_tokens: int = flag(4, "--draft-tokens", help="Tokens drafted per speculative step.", ge=1, le=32)
    sampler: Literal["next-token", "block-diffusion"] | None = flag(
        None, "--sampler", metavar="next-token|block-diffusion",
        help="block-diffusion: blocks of tokens denoised in parallel (default: what the model was trained for).")
    block_size: int | None = flag(None, "--block-size", help="Block diffusion: tokens per block (the trained size).",
                                  ge=1, le=65536)
    steps: int | None = flag(None, "--steps", help="Block diffusion: most denoising passes per block (default: no limit).",
                             ge=1, le=65536)
    threshold: float | None = flag(None, "--threshold", gt=0, le=1,
                                   help="Block diffusion: commit every masked token this probable in one pass, in (0, 1] "
                                        "(Fast-dLLM; default: the model's).")
    unmask: Literal["confidence", "first-hitting"] | None = flag(
        None, "--unmask", metavar="confidence|first-hitting",
        help="Block diffusion: commit by confidence (Fast-dLLM) or one random position a pass (BD3-LM's "
             "first-hitting sampler). Default: the model's.")
    stream: bool = flag(True, "--stream/--no-stream", help="Print tokens as they are made.", recipe=False)
    echo: bool = flag(False, "--echo", help="Print (and write) the prompt before the continuation.")

    def load_options(self) -> dict:
        return {**super().load_options(), "sampler": self.sampler}
