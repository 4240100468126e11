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

import numpy as np

# the prompt grammar lives with the product; the dataset re-exports it for its users
from argen.modalities.audio.melody_grammar import (  # noqa: F401
    ATTACK_S,
    BPM_RANGE,
    DEFAULT_BPM,
    GRAMMAR,
    HIGHEST,
    LOWEST,
    MAX_NOTES,
    PITCH_CLASSES,
    SAMPLE_RATE,
    WAVES,
    Melody,
    midi_to_hz,
    midi_to_note,
    note_to_midi,
    parse_prompt,
)


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
