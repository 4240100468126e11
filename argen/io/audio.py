"""Audio files through PyAV: WAV, FLAC, MP3 and Ogg (Opus) written atomically with the
generation metadata as a JSON ``comment`` tag; any file PyAV decodes read back as mono float32
at the model's rate. A missing, corrupt or silent-stream-less file is a clear error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from argen.errors import ArgenError, UsageError
from argen.io.atomic import atomic_path

# suffix -> (container format, encoder, the encoder's sample rate: None keeps the source's)
FORMATS: dict[str, tuple[str, str, int | None]] = {
    ".wav": ("wav", "pcm_s16le", None),
    ".flac": ("flac", "flac", None),
    ".mp3": ("mp3", "libmp3lame", None),
    ".ogg": ("ogg", "libopus", 48_000),  # Opus runs at 48 kHz; players resample
}
TAG = "comment"


def check_audio_suffix(path: str | Path) -> str:
    """The lower-case suffix of an output path argen can write, else a UsageError."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"cannot write audio as {suffix or 'a file without a suffix'!r}",
                         hint=f"use one of: {', '.join(FORMATS)}")
    return suffix


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int, meta: dict[str, Any] | None = None) -> Path:
    """Write ``samples`` float in [-1, 1], mono (T,) or (1, T), or stereo (2, T), in the format of
    ``path``'s suffix."""
    import av

    fmt, codec, rate = FORMATS[check_audio_suffix(path)]
    rate = rate or sample_rate
    x = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    x = x if x.ndim == 2 else x[None]  # (C, T)
    if x.shape[0] not in (1, 2):
        raise ValueError(f"audio has {x.shape[0]} channels; argen writes mono or stereo")
    layout, sample_fmt = ("mono", "flt") if x.shape[0] == 1 else ("stereo", "fltp")  # fltp: planar (C, T)
    path = Path(path)
    with atomic_path(path) as tmp:
        # bitexact: no "LavfN.N.N" encoder tag, so the same samples give the same bytes whatever PyAV build wrote them
        with av.open(str(tmp), "w", format=fmt, container_options={"fflags": "+bitexact"}) as out:
            if meta is not None:
                out.metadata[TAG] = json.dumps(meta, ensure_ascii=False, sort_keys=True)
            stream = out.add_stream(codec, rate=rate, layout=layout)
            target = stream.codec_context.format.name if stream.codec_context.format else "s16"
            resampler = av.AudioResampler(format=target, layout=layout, rate=rate)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format=sample_fmt, layout=layout)
            frame.sample_rate = sample_rate
            for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
                for packet in stream.encode(chunk):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    return path


def read_audio(path: str | Path, sample_rate: int, channels: int = 1) -> np.ndarray:
    """Any audio (or video with an audio track) PyAV reads -> float32 at ``sample_rate``: mono
    (T,), or with ``channels=2`` stereo (2, T) (a mono file on both sides)."""
    import av

    from argen.io.files import check_file

    p = check_file(path, "audio file")
    try:
        with av.open(str(p)) as src:
            if not src.streams.audio:
                raise ArgenError(f"{p} has no audio stream", hint="pass an audio file (wav, flac, mp3, ogg, ...)")
            stereo = channels == 2
            resampler = av.AudioResampler(format="fltp" if stereo else "flt", layout="stereo" if stereo else "mono",
                                          rate=sample_rate)
            flat = (lambda f: f.to_ndarray()) if stereo else (lambda f: f.to_ndarray().reshape(-1))  # (2, n) / (n,)
            parts = []
            for frame in src.decode(src.streams.audio[0]):
                frame.pts = None  # let the resampler count samples itself (odd timestamps are not our problem)
                parts += [flat(f) for f in resampler.resample(frame)]
            parts += [flat(f) for f in resampler.resample(None)]
    except ArgenError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as e:
        raise ArgenError(f"{p} is not a readable audio file ({type(e).__name__})",
                         hint="the file may be corrupt; any format ffmpeg decodes is accepted") from None
    audio = np.concatenate(parts, axis=-1).astype(np.float32) if parts else np.zeros(0, np.float32)
    if audio.shape[-1] == 0:
        raise ArgenError(f"{p} holds no audio samples", hint="the file may be empty or corrupt")
    return audio


def read_audio_metadata(path: str | Path) -> dict[str, Any] | None:
    """The metadata argen wrote into an audio file (container or stream tag), or None."""
    import av

    try:
        with av.open(str(path)) as src:
            tags = [src.metadata, *(s.metadata for s in src.streams.audio)]
    except (av.error.FFmpegError, OSError):
        return None
    for t in tags:
        text = {k.lower(): v for k, v in t.items()}.get(TAG)
        if text:
            try:
                meta = json.loads(text)
            except ValueError:
                continue
            if isinstance(meta, dict) and meta.get("generator") == "argen":
                return meta
    return None
