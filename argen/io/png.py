"""PNG images: generation metadata in an iTXt chunk named "argen" (JSON), atomic writes, and a
reader that turns a corrupt or non-image file into a clear error."""

from __future__ import annotations

import json
import warnings
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


# what argen decodes from a user's picture (--inpaint, --mask): 64M pixels, 192 MiB as RGB, far
# above any model's size; Pillow's own guard only warns at 89M pixels and refuses at 179M
MAX_PIXELS = 1 << 26


def _too_large(p: Path, size: tuple[int, int] | None) -> ArgenError:
    shown = f"{size[0]}x{size[1]} pixels" if size else "larger"
    return ArgenError(f"{p} is {shown}, more than argen reads ({MAX_PIXELS:,} pixels at most)",
                      hint="pass a smaller picture; models make at most a few megapixels")


def read_image(path: str | Path) -> Image.Image:
    """An image file as RGB; a missing, corrupt, non-image or oversized file (a decompression
    bomb: a small file that claims gigabytes of pixels) is a one-line ArgenError, checked from
    its header before any pixel is decoded."""
    from argen.io.files import check_file

    p = check_file(path, "image", hint="pass a PNG or JPEG file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked just below
            with Image.open(p) as im:
                if im.size[0] * im.size[1] > MAX_PIXELS:
                    raise _too_large(p, im.size)
                im.load()
                return im.convert("RGB")
    except Image.DecompressionBombError:
        raise _too_large(p, _header_size(p)) from None
    except MemoryError:
        raise ArgenError(f"{p}: not enough memory to decode it", hint="pass a smaller picture") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ArgenError(f"{p} is not a readable image ({type(e).__name__})",
                         hint="pass a PNG or JPEG file; the file may be corrupt") from None


def _header_size(p: Path) -> tuple[int, int] | None:
    """A PNG's size from its IHDR chunk alone (Pillow refuses to open it at all past its guard)."""
    try:
        with open(p, "rb") as f:
            if f.read(8) == b"\x89PNG\r\n\x1a\n" and f.read(8)[4:] == b"IHDR":
                return int.from_bytes(f.read(4), "big"), int.from_bytes(f.read(4), "big")
    except OSError:
        pass
    return None


def read_png_metadata(path: str | Path) -> dict[str, Any] | None:
    """The metadata argen embedded, or None if the PNG has none. Only the chunks before the pixel
    data are parsed (argen writes its chunk there), so a huge picture costs nothing to read and
    Pillow's decompression-bomb guard (which is about decoding) does not apply."""
    try:
        with open(path, "rb") as f, PngImagePlugin.PngImageFile(f) as im:
            raw = im.info.get(CHUNK)  # not im.text: it decodes the whole picture to find later chunks
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ArgenError(f"{path} is not a readable PNG", hint="the file may be corrupt") from None
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ArgenError(f"{path}: its argen metadata is not valid JSON", hint="the file was altered") from None

