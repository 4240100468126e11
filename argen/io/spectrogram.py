"""A spectrogram picture of mono audio: log-magnitude STFT, low frequencies at the bottom, a
dark-to-bright palette, written as PNG (with the audio's metadata)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from argen.io.png import write_png


def spectrogram_image(samples: np.ndarray, n_fft: int = 512, hop: int = 128, height: int = 256,
                      floor_db: float = -80.0) -> np.ndarray:
    """uint8 RGB (height, frames, 3): columns are STFT frames, rows frequency bins (resampled)."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None] + hop * np.arange(frames)[:, None]  # (F, n_fft)
    mag = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft), axis=1)).T  # (bins, F)
    db = 20 * np.log10(mag / max(mag.max(), 1e-12) + 1e-12)
    level = np.clip(1 - db / floor_db, 0, 1)[::-1]  # (bins, F), 1 = loudest, low bins at the bottom
    rows = np.linspace(0, level.shape[0] - 1, height).round().astype(int)
    v = level[rows]
    rgb = np.stack([np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 0.5, 0, 1) * v, np.clip(1.5 * v, 0, 1) * (1 - v) + v**4], -1)
    return (rgb * 255).round().astype(np.uint8)


def write_spectrogram(path: str | Path, samples: np.ndarray, meta: dict[str, Any] | None = None) -> Path:
    return write_png(path, spectrogram_image(samples), meta)
