"""Video files through PyAV: MP4 (H.264, yuv420p) written atomically with the generation
metadata as a JSON ``comment`` tag in the container; any clip PyAV decodes read back at the
model's resolution and frame rate (centre-cropped, resized, resampled in time).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from argen.errors import ArgenError, UsageError
from argen.io.atomic import atomic_path

TAG = "comment"


def check_video_suffix(path: str | Path) -> None:
    if Path(path).suffix.lower() != ".mp4":
        raise UsageError(f"cannot write video as {Path(path).suffix or 'a file without a suffix'!r}",
                         hint="write an .mp4 file")


def write_mp4(path: str | Path, frames: np.ndarray, fps: float, meta: dict[str, Any] | None = None,
              crf: int = 18) -> Path:
    """Write uint8 frames (T, H, W, 3) as H.264 yuv420p; odd sizes are padded to even by
    repeating the last row or column (yuv420p needs even dimensions)."""
    import av

    check_video_suffix(path)
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be (T, H, W, 3) with T >= 1, got {frames.shape}")
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    path = Path(path)
    with atomic_path(path) as tmp:
        # bitexact: no "LavfN.N.N" encoder tag, so the same frames give the same bytes whatever PyAV build wrote them
        with av.open(str(tmp), "w", format="mp4", container_options={"fflags": "+bitexact"}) as out:
            if meta is not None:
                out.metadata[TAG] = json.dumps(meta, ensure_ascii=False, sort_keys=True)
            stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            # the lookahead's macroblock tree reads uninitialised memory on small frames: off, so that
            # the same frames always give the same bytes
            stream.options = {"crf": str(crf), "x264-params": "mbtree=0"}
            for f in frames:
                # through numpy: the converter's own frame has uninitialised row padding that x264
                # reads, so the same pixels could give different bytes from run to run
                yuv = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p").to_ndarray()
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(yuv), format="yuv420p")):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    return path


def square_resize(frame: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop (H, W, 3) to a square and resize it to (size, size, 3) (area filter)."""
    h, w = frame.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    img = Image.fromarray(frame[top:top + s, left:left + s])
    return np.asarray(img.resize((size, size), Image.BOX if s >= size else Image.BICUBIC))


def fit_resize(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop (H, W, 3) to the aspect ratio of (height, width) and resize it to that size
    (area filter when shrinking, bicubic when enlarging)."""
    h, w = frame.shape[:2]
    if h * width > w * height:  # taller than the target: crop rows
        ch, cw = max(1, round(w * height / width)), w
    else:
        ch, cw = h, max(1, round(h * width / height))
    top, left = (h - ch) // 2, (w - cw) // 2
    img = Image.fromarray(frame[top:top + ch, left:left + cw])
    return np.asarray(img.resize((width, height), Image.BOX if ch >= height else Image.BICUBIC))


def read_video(path: str | Path, size: int | tuple[int, int], fps: float, max_frames: int | None = None) -> np.ndarray:
    """Any clip PyAV decodes -> uint8 (T, H, W, 3) at ``fps``: each output time takes the latest
    source frame shown at or before it. ``size``: an int for square frames (size, size), or
    (height, width); frames are centre-cropped to its aspect ratio and resized. Audio tracks
    are ignored."""
    resize = (lambda f: square_resize(f, size)) if isinstance(size, int) else (lambda f: fit_resize(f, *size))
    import av

    from argen.io.files import check_file

    p = check_file(path, "video file")
    times, frames = [], []
    try:
        with av.open(str(p)) as src:
            if not src.streams.video:
                raise ArgenError(f"{p} has no video stream", hint="pass a video file (mp4, mkv, webm, gif, ...)")
            stream = src.streams.video[0]
            for frame in src.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else len(times) / float(stream.average_rate or fps)
                times.append(t)
                frames.append(resize(frame.to_ndarray(format="rgb24")))
    except ArgenError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as e:
        if not frames:
            raise ArgenError(f"{p} is not a readable video ({type(e).__name__})",
                             hint="the file may be corrupt; any format ffmpeg decodes is accepted") from None
        # a truncated file: keep the frames decoded before the damage
    if not frames:
        raise ArgenError(f"{p} holds no video frames", hint="the file may be empty or corrupt")
    order = np.argsort(times, kind="stable")
    times = np.asarray(times)[order] - min(times)
    frames = [frames[i] for i in order]
    last = times[-1] + (times[-1] - times[-2] if len(times) > 1 else 1.0 / fps)  # when the last frame stops showing
    n = max(1, int(np.floor(last * fps + 1e-6)))
    if max_frames is not None:
        n = min(n, max_frames)
    picks = np.searchsorted(times, np.arange(n) / fps + 1e-6, side="right") - 1
    return np.stack([frames[max(0, i)] for i in picks])


def read_video_metadata(path: str | Path) -> dict[str, Any] | None:
    """The metadata argen wrote into a video container, or None."""
    import av

    try:
        with av.open(str(path)) as src:
            text = {k.lower(): v for k, v in src.metadata.items()}.get(TAG)
    except (av.error.FFmpegError, OSError):
        return None
    try:
        meta = json.loads(text) if text else None
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and meta.get("generator") == "argen" else None
