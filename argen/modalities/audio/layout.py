"""How audio becomes one token sequence for the engine's transformer (MusicGen's layout).

A sequence is the prompt's words, as conditioning ids (one position each), then the codec's
codes laid out by the delay pattern: step s holds codebook k's code of frame s - k, one token
per codebook per step (the transformer's ``n_streams`` = number of codebooks). Each stream's
vocabulary is the codebook plus ``PAD`` (the delay pattern's empty slots). Without a prompt
the sequence starts with the lone ``<start>`` word (the unconditional prompt, also used for
classifier-free guidance).

With ``beat_cues`` the layout also places a cue step before the first step of every beat: a
conditioning position holding the word of the note that the beat plays (``<end>`` after the
last beat). A prompt states the notes and the tempo, so the cue steps are fixed before sampling
starts; they are forced like the delay pattern's PADs, carry no loss, and are dropped before the
codes go to the codec. They spare a small model from counting frames to find which note of the
prompt is due (the score-aligned conditioning of melody-conditioned models; MusicGen itself
conditions on text and a chromagram instead). The classifier-free-guidance twin keeps the cues
and loses only the prompt's words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from argen.engine.config import DictConfig
from argen.modalities.audio import melody_grammar as melodies
from argen.modalities.audio.codec import apply_delay, undo_delay


def prompt_words() -> list[str]:
    notes = [melodies.midi_to_note(m) for m in range(melodies.LOWEST, melodies.HIGHEST + 1)]
    bpms = [str(b) for b in range(melodies.BPM_RANGE[0], melodies.BPM_RANGE[1] + 1)]
    return ["<start>", *melodies.WAVES, *notes, "at", "bpm", *bpms, "<end>"]


@dataclass
class AudioLayout(DictConfig):
    n_codebooks: int = 4
    codebook_size: int = 256
    sample_rate: int = 16_000
    hop: int = 320
    words: list[str] = field(default_factory=prompt_words)
    beat_cues: bool = False  # a cue step before each beat (see the module's docstring)

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
        return [self._cond(w) for w in words]

    def _cond(self, word: str) -> tuple[int, ...]:
        return (self.vocab_size + self.words.index(word),) * self.n_codebooks

    def is_cue(self, step: tuple[int, ...]) -> bool:
        return step[0] >= self.vocab_size

    def cues(self, text: str | None) -> dict[int, tuple[int, ...]]:
        """Step index (codebook 0's frame) -> the cue step placed before it; {} without cues or prompt."""
        if not self.beat_cues or text is None:
            return {}
        melody = melodies.parse_prompt(text)
        frames_per_beat = melody.beat_s * self.frame_rate
        out = {round(j * frames_per_beat): self._cond(melodies.midi_to_note(m)) for j, m in enumerate(melody.notes)}
        out[round(len(melody.notes) * frames_per_beat)] = self._cond("<end>")
        return out

    def with_cues(self, steps: list, cues: dict[int, tuple[int, ...]]) -> list:
        """``steps`` with each cue inserted before the step it belongs to (cues past the end dropped)."""
        out = []
        for s, step in enumerate(steps):
            if s in cues:
                out.append(cues[s])
            out.append(step)
        return out

    def without_cues(self, steps: list) -> list:
        return [s for s in steps if not self.is_cue(s)]

    def delayed_steps(self, codes: torch.Tensor) -> list[tuple[int, ...]]:
        """Codes (K, F) -> the F + K - 1 steps of the delay pattern, one K-tuple each."""
        return [tuple(s) for s in apply_delay(codes[None], self.pad)[0].t().tolist()]

    def forced(self, clip_codes: torch.Tensor | None, total_frames: int,
               text: str | None = None) -> tuple[list[tuple[int, ...]], torch.Tensor]:
        """For a generation of ``total_frames`` frames that starts with ``clip_codes`` (K, F0)
        and follows the prompt ``text``: the steps given as prompt (the clip's frames, complete in
        every stream, and their cues) and, for the rest, the tokens fixed before sampling (the
        delay pattern's K-1 - k leading PADs, the clip's tail in the later streams, trailing
        PADs, the cue steps), -1 where the model samples: (prompt steps, forced (steps, K))."""
        k = self.n_codebooks
        f0 = 0 if clip_codes is None else clip_codes.shape[1]
        full = torch.full((k, total_frames), -1, dtype=torch.long)
        if f0:
            full[:, :f0] = clip_codes
        grid = apply_delay(full[None], self.pad)[0]  # (K, total + K - 1): -1 where sampled
        steps = self.with_cues([tuple(s) for s in grid.t().tolist()], self.cues(text))
        given = next((i for i, s in enumerate(steps) if min(s) < 0), len(steps))
        return steps[:given], torch.tensor(steps[given:], dtype=torch.long).view(-1, k)

    def codes_from_steps(self, steps: list[tuple[int, ...]]) -> torch.Tensor:
        """Delay-pattern steps (S, K), cue steps dropped -> codes (K, S - K + 1); PADs a model left
        inside become code 0."""
        grid = torch.tensor(self.without_cues(steps), dtype=torch.long).t()[None]  # (1, K, S)
        return undo_delay(grid)[0].clamp(max=self.codebook_size - 1)
