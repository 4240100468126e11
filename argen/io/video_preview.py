"""Previews of a video: a contact sheet (PNG; one row per second of the clip, each row labelled
with its start time) or an animated picture (GIF or WebP, looping at the clip's frame rate).

Every preview carries the generation metadata, so `argen info` reads it: the PNG in its iTXt
chunk (argen/io/png.py), the GIF in its comment extension (JSON, UTF-8), the WebP in the EXIF
ImageDescription tag (JSON with non-ASCII characters escaped, as EXIF text is ASCII).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from argen.errors import ArgenError, UsageError
from argen.io.atomic import atomic_path
from argen.io.png import write_png
from argen.io.sheet import labelled_rows

SUFFIXES = (".png", ".gif", ".webp")
MAX_COLUMNS = 24  # frames per row; a faster clip shows evenly spaced frames of each second
MAX_ROWS = 60  # seconds shown; a longer clip shows evenly spaced seconds
ANIMATED_SIDE = 320  # longest side of an animated preview (larger clips are scaled down)
EXIF_DESCRIPTION = 0x010E


def sheet_rows(n_frames: int, fps: float) -> list[tuple[int, list[int]]]:
    """(second, frame indices) per row: the frames shown during that second of the clip."""
    seconds = max(1, math.ceil(n_frames / fps - 1e-9))
    picked = range(seconds) if seconds <= MAX_ROWS else sorted({round(x) for x in np.linspace(0, seconds - 1, MAX_ROWS)})
    rows = []
    for s in picked:
        idx = [i for i in range(n_frames) if s <= i / fps + 1e-9 < s + 1]
        if len(idx) > MAX_COLUMNS:
            idx = [idx[round(x)] for x in np.linspace(0, len(idx) - 1, MAX_COLUMNS)]
        rows.append((s, idx))
    return rows


def contact_sheet(frames: np.ndarray, fps: float) -> np.ndarray:
    """uint8 sheet of ``frames`` (T, H, W, 3): one row per second, labelled "0 s", "1 s", ..."""
    rows = sheet_rows(len(frames), fps)
    return labelled_rows([[frames[i] for i in idx] for _, idx in rows], [f"{s} s" for s, _ in rows])


def _small(frame: np.ndarray) -> Image.Image:
    img = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    scale = ANIMATED_SIDE / max(img.size)
    return img if scale >= 1 else img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                             Image.BOX)


def write_animated(path: str | Path, frames: np.ndarray, fps: float, meta: dict[str, Any] | None = None) -> Path:
    """A looping GIF or WebP of ``frames`` (T, H, W, 3) at ``fps`` with ``meta`` embedded."""
    path = Path(path)
    images = [_small(f) for f in frames]
    duration = max(20, round(1000 / fps))  # ms per frame; browsers show GIF frames under 20 ms slower
    text = json.dumps(meta or {}, ensure_ascii=path.suffix.lower() == ".webp", sort_keys=True)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".gif":
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0,
                           comment=text.encode("utf-8"))
        else:
            exif = Image.Exif()
            exif[EXIF_DESCRIPTION] = text
            images[0].save(tmp, format="WEBP", save_all=True, append_images=images[1:], duration=duration, loop=0,
                           lossless=True, exif=exif)
    return path


def write_video_preview(path: str | Path, frames: np.ndarray, fps: float, meta: dict[str, Any] | None = None) -> Path:
    """The preview ``path`` asks for by its suffix: .png a contact sheet, .gif/.webp an animation."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"--preview {path}: video previews are {', '.join(SUFFIXES)} files",
                         hint="give a path ending in .png (contact sheet), .gif or .webp (animated)")
    if suffix == ".png":
        return write_png(path, contact_sheet(frames, fps), meta)
    return write_animated(path, frames, fps, meta)


def read_animated_metadata(path: str | Path) -> dict[str, Any] | None:
    """The metadata argen embedded in a GIF or WebP preview, or None."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # only the header is read
            with Image.open(path) as im:
                raw = im.info.get("comment") if im.format == "GIF" else im.getexif().get(EXIF_DESCRIPTION)
    except Image.DecompressionBombError:
        raise ArgenError(f"{path} claims more pixels than any argen preview has",
                         hint="the file is not one argen wrote, or it was altered") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ArgenError(f"{path} is not a readable picture", hint="the file may be corrupt") from None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        meta = json.loads(raw) if raw else None
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and meta.get("generator") == "argen" else None
