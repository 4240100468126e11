"""PNG images: generation metadata in an iTXt chunk named "argen" (JSON), atomic writes, and a
reader that turns a corrupt or non-image file into a clear error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from argen.errors import ArgenError
from argen.io.atomic import atomic_path

CHUNK = "argen"


def write_png(path: str | Path, image: Image.Image | np.ndarray, meta: dict[str, Any] | None = None) -> Path:
    """Write ``image`` (PIL, or uint8 array (H, W, 3)) with ``meta`` embedded; returns the path.
    The bytes depend only on the pixels and the metadata, so the same seed gives the same file."""
    img = Image.fromarray(np.asarray(image, dtype=np.uint8)) if isinstance(image, np.ndarray) else image
    info = PngImagePlugin.PngInfo()
    if meta is not None:
        info.add_itxt(CHUNK, json.dumps(meta, ensure_ascii=False, sort_keys=True))
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", pnginfo=info)
    return path


def read_image(path: str | Path) -> Image.Image:
    """An image file as RGB; a missing, corrupt or non-image file is an ArgenError."""
    p = Path(path)
    if not p.is_file():
        raise ArgenError(f"{p} not found", hint="check the path")
    try:
        with Image.open(p) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ArgenError(f"{p} is not a readable image ({type(e).__name__})",
                         hint="pass a PNG or JPEG file; the file may be corrupt") from None


def read_png_metadata(path: str | Path) -> dict[str, Any] | None:
    """The metadata argen embedded, or None if the PNG has none."""
    try:
        with Image.open(path) as im:
            text = getattr(im, "text", {}) or {}
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ArgenError(f"{path} is not a readable PNG", hint="the file may be corrupt") from None
    raw = text.get(CHUNK)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ArgenError(f"{path}: its argen metadata is not valid JSON", hint="the file was altered") from None

