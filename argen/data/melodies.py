"""The procedural "melodies" dataset for text-to-audio: monophonic 16 kHz melodies and prompts.

Prompts follow one grammar (other modules and tests rely on it)::

    <wave> <note> <note> ...[ at <bpm> bpm]

``<wave>`` is sine, square, saw or triangle; a note is a letter A-G, an optional ``#`` and an
octave, from A2 to C6; 1 to 8 notes; bpm 60 to 180, 120 when unstated. One note sounds per
beat with a short attack and an exponential decay. Waveforms are additive (band-limited: no
harmonic above Nyquist), so their harmonic content is exact and the analyser can tell them
apart. Sample ``i`` of a split is a pure function of ``(seed, split, i)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from argen.errors import UsageError

SAMPLE_RATE = 16_000
WAVES = ("sine", "square", "saw", "triangle")
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
LOWEST, HIGHEST = 45, 84  # MIDI numbers of A2 and C6
MAX_NOTES = 8
BPM_RANGE = (60, 180)
DEFAULT_BPM = 120
ATTACK_S = 0.01
GRAMMAR = ("<wave> <note> <note> ...[ at <bpm> bpm]; wave: sine|square|saw|triangle; notes A2 to C6 "
           "(C4, F#3, ...), 1 to 8 of them; bpm 60 to 180 (default 120)")
_NOTE = re.compile(r"^([A-Ga-g])(#?)(-?\d)$")


def note_to_midi(name: str) -> int:
    """``"A4"`` -> 69; a name outside A2..C6 or not a note is a UsageError."""
    m = _NOTE.match(name)
    if not m:
        raise UsageError(f"{name!r} is not a note", hint=f"prompt grammar: {GRAMMAR}")
    letter, sharp, octave = m.group(1).upper(), m.group(2), int(m.group(3))
    if letter + sharp not in PITCH_CLASSES:  # E# and B# are not spelled here
        raise UsageError(f"{name!r} is not a note (no {letter}#)", hint=f"prompt grammar: {GRAMMAR}")
    midi = 12 * (octave + 1) + PITCH_CLASSES.index(letter + sharp)
    if not LOWEST <= midi <= HIGHEST:
        raise UsageError(f"note {name} is outside A2..C6", hint=f"prompt grammar: {GRAMMAR}")
    return midi


def midi_to_note(midi: int) -> str:
    return f"{PITCH_CLASSES[midi % 12]}{midi // 12 - 1}"


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


@dataclass
class Melody:
    wave: str
    notes: list[int]  # MIDI numbers
    bpm: int = DEFAULT_BPM
    bpm_stated: bool = False

    @property
    def beat_s(self) -> float:
        return 60.0 / self.bpm

    @property
    def seconds(self) -> float:
        return len(self.notes) * self.beat_s

    def prompt(self) -> str:
        text = " ".join([self.wave, *(midi_to_note(m) for m in self.notes)])
        return text + (f" at {self.bpm} bpm" if self.bpm_stated else "")


def parse_prompt(text: str) -> Melody:
    """The melody a prompt describes; a prompt outside the grammar is a UsageError that states it."""
    words = text.strip().split()
    if not words:
        raise UsageError("the prompt is empty", hint=f"prompt grammar: {GRAMMAR}")
    wave = words[0].lower()
    if wave not in WAVES:
        raise UsageError(f"unknown waveform {words[0]!r}", hint=f"prompt grammar: {GRAMMAR}")
    bpm, stated = DEFAULT_BPM, False
    if len(words) >= 3 and words[-1].lower() == "bpm" and words[-3].lower() == "at":
        if not words[-2].isdigit() or not BPM_RANGE[0] <= int(words[-2]) <= BPM_RANGE[1]:
            raise UsageError(f"bpm must be an integer from 60 to 180, got {words[-2]!r}", hint=f"prompt grammar: {GRAMMAR}")
        bpm, stated, words = int(words[-2]), True, words[:-3]
    notes = [note_to_midi(w) for w in words[1:]]
    if not 1 <= len(notes) <= MAX_NOTES:
        raise UsageError(f"a prompt has 1 to {MAX_NOTES} notes, got {len(notes)}", hint=f"prompt grammar: {GRAMMAR}")
    return Melody(wave, notes, bpm, stated)


def harmonic_amplitudes(wave: str, n: int) -> np.ndarray:
    """Amplitudes of harmonics 1..n of a unit waveform (Fourier series): (n,)."""
    k = np.arange(1, n + 1, dtype=np.float64)
    odd = (k % 2 == 1).astype(np.float64)
    if wave == "sine":
        return (k == 1).astype(np.float64)
    if wave == "square":
        return odd / k
    if wave == "saw":
        return 1.0 / k
    if wave == "triangle":  # alternating signs are a phase; only magnitudes matter here
        return odd / k**2
    raise ValueError(f"unknown waveform {wave!r}")


def tone(wave: str, hz: float, n_samples: int, sr: int = SAMPLE_RATE, table_size: int = 4096) -> np.ndarray:
    """A band-limited periodic waveform at ``hz``, peak about 1: (n_samples,) float64. One cycle
    is summed from its harmonics below Nyquist into a table, then read at the tone's phase."""
    n_harm = max(1, int((sr / 2 - 1) // hz))
    amps = harmonic_amplitudes(wave, n_harm)
    k = np.nonzero(amps)[0] + 1
    cycle = np.arange(table_size + 1) / table_size  # one period, closed for interpolation
    table = (amps[k - 1, None] * np.sin(2 * np.pi * k[:, None] * cycle[None, :])).sum(0)  # (table_size + 1,)
    table /= max(1e-9, np.abs(table).max())
    phase = (hz * np.arange(n_samples) / sr) % 1.0 * table_size
    return np.interp(phase, np.arange(table_size + 1), table)


def envelope(n_samples: int, beat_s: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Linear attack, exponential decay (to about 5% at the end of the beat), 5 ms fade-out."""
    t = np.arange(n_samples) / sr
    env = np.minimum(1.0, t / ATTACK_S) * np.exp(-3.0 * t / beat_s)
    fade = min(n_samples, int(0.005 * sr))
    env[n_samples - fade:] *= np.linspace(1.0, 0.0, fade)
    return env


def render(melody: Melody, sr: int = SAMPLE_RATE, gain: float = 0.6) -> np.ndarray:
    """The melody as mono float32 samples in [-1, 1]: (round(seconds * sr),)."""
    beat = int(round(melody.beat_s * sr))
    out = np.zeros(beat * len(melody.notes), dtype=np.float64)
    env = envelope(beat, melody.beat_s, sr)
    for j, midi in enumerate(melody.notes):
        out[j * beat:(j + 1) * beat] = tone(melody.wave, midi_to_hz(midi), beat, sr) * env
    return (gain * out).astype(np.float32)


def random_melody(rng: np.random.Generator) -> Melody:
    """A melody drawn from the grammar: steps of a few semitones, so that it sounds like a tune."""
    n = int(rng.integers(1, MAX_NOTES + 1))
    start = int(rng.integers(LOWEST, HIGHEST + 1))
    notes = [start]
    for _ in range(n - 1):
        notes.append(int(np.clip(notes[-1] + rng.integers(-5, 6), LOWEST, HIGHEST)))
    stated = bool(rng.random() < 0.7)
    bpm = int(rng.integers(BPM_RANGE[0], BPM_RANGE[1] + 1)) if stated else DEFAULT_BPM
    return Melody(str(rng.choice(WAVES)), notes, bpm, stated)


def sample(seed: int, i: int, split: str = "train") -> tuple[str, np.ndarray, Melody]:
    """Sample ``i`` of ``split`` ("train" or "val"): (prompt, float32 samples, melody)."""
    salt = {"train": 0, "val": 1}[split]
    rng = np.random.default_rng([seed, salt, i])
    melody = random_melody(rng)
    return melody.prompt(), render(melody), melody
