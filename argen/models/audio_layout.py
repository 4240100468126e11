"""How audio becomes one token sequence for the engine's transformer (MusicGen's layout).

A sequence is the prompt's words, as conditioning ids (one position each), then the codec's
codes laid out by the delay pattern: step s holds codebook k's code of frame s - k, one token
per codebook per step (the transformer's ``n_streams`` = number of codebooks). Each stream's
vocabulary is the codebook plus ``PAD`` (the delay pattern's empty slots). Without a prompt
the sequence starts with the lone ``<start>`` word (the unconditional prompt, also used for
classifier-free guidance).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from argen.data import melodies
from argen.models.audio_codec import apply_delay, undo_delay
from argen.models.config import DictConfig


def prompt_words() -> list[str]:
    notes = [melodies.midi_to_note(m) for m in range(melodies.LOWEST, melodies.HIGHEST + 1)]
    bpms = [str(b) for b in range(melodies.BPM_RANGE[0], melodies.BPM_RANGE[1] + 1)]
    return ["<start>", *melodies.WAVES, *notes, "at", "bpm", *bpms]


@dataclass
class AudioLayout(DictConfig):
    n_codebooks: int = 4
    codebook_size: int = 256
    sample_rate: int = 16_000
    hop: int = 320
    words: list[str] = field(default_factory=prompt_words)

    @property
    def pad(self) -> int:
        return self.codebook_size  # the delay pattern's filler, in every stream

    @property
    def stream_vocab(self) -> int:
        return self.codebook_size + 1

    @property
    def vocab_size(self) -> int:
        return self.n_codebooks * self.stream_vocab

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def prompt(self, text: str | None) -> list[tuple[int, ...]]:
        """A prompt (checked against the melodies grammar) -> conditioning positions; None -> unconditional."""
        words = ["<start>"]
        if text is not None:
            melodies.parse_prompt(text)  # a clear error for text outside the grammar
            words += text.split()
        ids = {w: i for i, w in enumerate(self.words)}
        return [(self.vocab_size + ids[w],) * self.n_codebooks for w in words]

    def delayed_steps(self, codes: torch.Tensor) -> list[tuple[int, ...]]:
        """Codes (K, F) -> the F + K - 1 steps of the delay pattern, one K-tuple each."""
        return [tuple(s) for s in apply_delay(codes[None], self.pad)[0].t().tolist()]

    def forced(self, clip_codes: torch.Tensor | None, total_frames: int) -> tuple[list[tuple[int, ...]], torch.Tensor]:
        """For a generation of ``total_frames`` frames that starts with ``clip_codes`` (K, F0):
        the steps given as prompt (the first F0, complete in every stream) and, for the
        remaining total_frames + K - 1 - F0 steps, the tokens the delay pattern fixes
        (K-1 - k leading PADs, the clip's tail in the later streams, trailing PADs), -1 where the
        model samples: (prompt steps, forced (steps, K))."""
        k = self.n_codebooks
        f0 = 0 if clip_codes is None else clip_codes.shape[1]
        full = torch.full((k, total_frames), -1, dtype=torch.long)
        if f0:
            full[:, :f0] = clip_codes
        grid = apply_delay(full[None], self.pad)[0]  # (K, total + K - 1): -1 where sampled
        steps = grid.t()  # (S, K)
        return [tuple(s) for s in steps[:f0].tolist()], steps[f0:].clone()

    def codes_from_steps(self, steps: list[tuple[int, ...]]) -> torch.Tensor:
        """Delay-pattern steps (S, K) -> codes (K, S - K + 1); PADs a model left inside become code 0."""
        grid = torch.tensor(steps, dtype=torch.long).t()[None]  # (1, K, S)
        return undo_delay(grid)[0].clamp(max=self.codebook_size - 1)
