"""Contact sheets drawn with Pillow: pictures tiled on a white sheet, each with its caption under
it (an image grid: the seed, and in a recipe the grid value), or rows with a label on their left
(a video: one row per second). Pillow's bundled font, so the bytes are the same everywhere."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_SIZE = 11
LINE = 14  # pixels per caption line
GAP = 4
MIN_CELL = 128  # small pictures are enlarged (nearest neighbour, whole factors) so captions fit under them


def font() -> ImageFont.ImageFont:
    return ImageFont.load_default(size=FONT_SIZE)


def fit(text: str, width: int, face) -> str:
    """``text`` cut (with an ellipsis) to fit ``width`` pixels."""
    if face.getlength(text) <= width:
        return text
    while text and face.getlength(text + "\u2026") > width:
        text = text[:-1]
    return text + "\u2026"


def enlarge(img: np.ndarray, factor: int) -> np.ndarray:
    return img if factor == 1 else np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def captioned_sheet(images: list[np.ndarray], captions: list[list[str]], cols: int | None = None) -> np.ndarray:
    """uint8 sheet of ``images`` (each (H, W, 3), same size), row by row, each with its caption
    lines (``captions[k]``, e.g. ``["seed 3", "cfg=2.0"]``) centred under it."""
    n = len(images)
    cols = max(1, min(n, cols or int(np.ceil(np.sqrt(n)))))
    rows = (n + cols - 1) // cols
    factor = max(1, -(-MIN_CELL // images[0].shape[1]))  # ceil(MIN_CELL / W)
    h, w = images[0].shape[0] * factor, images[0].shape[1] * factor
    lines = max((len(c) for c in captions), default=0)
    cell_h = h + lines * LINE + GAP
    sheet = Image.new("RGB", (cols * (w + GAP) + GAP, rows * (cell_h + GAP) + GAP), "white")
    draw, face = ImageDraw.Draw(sheet), font()
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        x, y = GAP + c * (w + GAP), GAP + r * (cell_h + GAP)
        sheet.paste(Image.fromarray(enlarge(np.asarray(img, dtype=np.uint8), factor)), (x, y))
        for i, line in enumerate(captions[k] if k < len(captions) else []):
            text = fit(line, w, face)
            draw.text((x + (w - face.getlength(text)) / 2, y + h + 2 + i * LINE), text, fill=(40, 40, 40), font=face)
    return np.asarray(sheet)


def labelled_rows(rows: list[list[np.ndarray]], labels: list[str], label_width: int = 44) -> np.ndarray:
    """uint8 sheet: each row of pictures (same size) in a line, its label on the left."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    sheet = Image.new("RGB", (label_width + cols * (w + GAP) + GAP, len(rows) * (h + GAP) + GAP), "white")
    draw, face = ImageDraw.Draw(sheet), font()
    for r, (row, label) in enumerate(zip(rows, labels)):
        y = GAP + r * (h + GAP)
        draw.text((4, y + (h - LINE) / 2), fit(label, label_width - 6, face), fill=(40, 40, 40), font=face)
        for c, img in enumerate(row):
            sheet.paste(Image.fromarray(np.asarray(img, dtype=np.uint8)), (label_width + c * (w + GAP), y))
    return np.asarray(sheet)
