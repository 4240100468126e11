"""The prompt grammar of the bundled melodies audio model::

    <wave> <note> <note> ...[ at <bpm> bpm]

``<wave>`` is sine, square, saw or triangle; a note is a letter A-G, an optional ``#`` and an
octave, from A2 to C6; 1 to 8 notes; bpm 60 to 180, 120 when unstated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
