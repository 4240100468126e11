"""A spectrogram picture of mono audio: the STFT's magnitude in dB relative to full scale (a
full-scale sine reads 0 dBFS), time in seconds along x, frequency in Hz up y, a dB colour bar,
the prompt as title. Written as PNG with the audio's metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from argen.io.figure import new_figure, pixels, plain
from argen.io.png import write_png

WIDTH, HEIGHT = 800, 400  # pixels of every spectrogram picture
FLOOR_DB = -100.0  # the colour scale spans FLOOR_DB..0 dBFS


def stft_dbfs(samples: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """(bins, frames) magnitude in dBFS of a Hann-windowed STFT; bin k is k * sr / n_fft Hz and
    frame t is centred at (t * hop + n_fft / 2) / sr seconds."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = 1 + (len(x) - n_fft) // hop
    window = np.hanning(n_fft)
    idx = np.arange(n_fft)[None] + hop * np.arange(frames)[:, None]  # (F, n_fft)
    mag = np.abs(np.fft.rfft(x[idx] * window, axis=1)).T  # (bins, F)
    # a sine of amplitude 1 peaks at sum(window) / 2: that is 0 dBFS
    return 20 * np.log10(np.maximum(mag * 2 / window.sum(), 10 ** (FLOOR_DB / 20)))


def render(samples: np.ndarray, sample_rate: int, title: str = "", n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """uint8 (HEIGHT, WIDTH, 3): the spectrogram with its axes, colour bar and title."""
    db = stft_dbfs(samples, n_fft, hop)
    seconds = max(len(np.asarray(samples).reshape(-1)), 1) / sample_rate
    fig = new_figure(WIDTH, HEIGHT)
    ax = fig.add_axes((0.09, 0.14, 0.76, 0.74))
    # each frame drawn over the hop around its centre, each bin over its width around its frequency
    left, df = (n_fft / 2 - hop / 2) / sample_rate, sample_rate / n_fft
    img = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=FLOOR_DB, vmax=0.0, interpolation="nearest",
                    extent=(left, left + db.shape[1] * hop / sample_rate, -df / 2, sample_rate / 2 + df / 2))
    ax.set_xlim(0.0, seconds)
    ax.set_ylim(0.0, sample_rate / 2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(plain(title or "audio", 80), fontsize=12)
    bar = fig.colorbar(img, cax=fig.add_axes((0.87, 0.14, 0.025, 0.74)))
    bar.set_label("dBFS")
    return pixels(fig)


def write_spectrogram(path: str | Path, samples: np.ndarray, sample_rate: int, meta: dict[str, Any] | None = None,
                      title: str | None = None) -> Path:
    """Write the spectrogram of ``samples`` (mono, ``sample_rate`` Hz) as a PNG with ``meta``
    embedded; the title is ``title``, else the prompt in ``meta``."""
    return write_png(path, render(samples, sample_rate, title if title is not None else (meta or {}).get("prompt", "")), meta)
