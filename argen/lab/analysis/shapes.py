"""Reading a shapes image back, deterministically: background, then each object's colour,
shape (from how much of its bounding box it fills), position and the relation between two.

Used by `argen eval image` to score generated images against their prompts; its own accuracy
on ground-truth images is tested.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from argen.lab.data.shapes import BACKGROUNDS, COLORS, POSITIONS, Scene

MIN_AREA = 12  # px; smaller blobs are noise
AXIS = {"left of": ("left of", "right of"), "right of": ("left of", "right of"),
        "above": ("above", "below"), "below": ("above", "below")}


@dataclass
class Blob:
    color: str
    shape: str
    center: tuple[float, float]  # (x, y)
    area: int


def _nearest(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    names = list(palette)
    d = ((np.array([palette[n] for n in names], dtype=float) - rgb[None]) ** 2).sum(1)
    return names[int(d.argmin())]


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask (H, W), as arrays of (y, x) pixels."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    out = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        stack, pixels = [(y0, x0)], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            pixels.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        out.append(np.array(pixels))
    return out


def _shape_of(pixels: np.ndarray) -> str:
    ys, xs = pixels[:, 0], pixels[:, 1]
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    fill = len(pixels) / box  # square ~1.0, circle ~pi/4, triangle ~0.5
    if fill > 0.9:
        return "square"
    return "circle" if fill > 0.64 else "triangle"


def analyse(image: np.ndarray) -> tuple[str, list[Blob]]:
    """(background name, objects largest first) for an RGB image (H, W, 3) uint8."""
    img = image.astype(float)
    flat = img.reshape(-1, 3)
    # the background: the palette colour nearest to the most common pixel value
    values, counts = np.unique(image.reshape(-1, 3), axis=0, return_counts=True)
    bg_name = _nearest(values[counts.argmax()].astype(float), BACKGROUNDS)
    # a pixel is foreground when some object colour is nearer to it than the background is:
    # a blurred edge is cut at its midpoint, where the sharp edge was
    bg = np.array(BACKGROUNDS[bg_name], dtype=float)
    objects = np.array([c for c in COLORS.values() if tuple(c) != tuple(BACKGROUNDS[bg_name])], dtype=float)
    to_bg = ((img - bg) ** 2).sum(-1)  # (H, W)
    to_obj = ((img[:, :, None, :] - objects[None, None]) ** 2).sum(-1).min(-1)  # (H, W)
    mask = to_obj < to_bg
    blobs = []
    for pixels in _components(mask):
        if len(pixels) < MIN_AREA:
            continue
        mean = flat[pixels[:, 0] * image.shape[1] + pixels[:, 1]].mean(0)
        center = (float(pixels[:, 1].mean()), float(pixels[:, 0].mean()))
        blobs.append(Blob(_nearest(mean, COLORS), _shape_of(pixels), center, len(pixels)))
    blobs.sort(key=lambda b: -b.area)
    return bg_name, blobs


def position_of(center: tuple[float, float]) -> str:
    return min(POSITIONS, key=lambda p: (POSITIONS[p][0] - center[0]) ** 2 + (POSITIONS[p][1] - center[1]) ** 2)


def relation_of(a: tuple[float, float], b: tuple[float, float]) -> str:
    """Where ``a`` is relative to ``b``, along the axis with the larger gap."""
    dx, dy = a[0] - b[0], a[1] - b[1]
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def _relation_holds(scene: Scene, blobs: list[Blob]) -> bool:
    """Whether the two prompted objects stand in the prompted relation. Each is found by what
    tells it from the other (its colour if the colours differ, else its shape), so a wrong shape
    costs the shape category, not this one; twins only have the axis of their separation."""
    a, b = scene.objects
    key = (lambda x: x.color) if a.color != b.color else (lambda x: x.shape)
    if key(a) == key(b):
        pair = [x for x in blobs if (x.color, x.shape) == (a.color, a.shape)]
        return len(pair) == 2 and relation_of(pair[0].center, pair[1].center) in AXIS[scene.relation]
    found = {}
    for x in blobs:  # largest first
        if a.color == b.color and x.color != a.color:
            continue
        found.setdefault(key(x), x)
    if key(a) not in found or key(b) not in found:
        return False
    return relation_of(found[key(a)].center, found[key(b)].center) == scene.relation


def score(scene: Scene, image: np.ndarray) -> dict[str, bool]:
    """Per-category correctness of ``image`` for the prompt's ``scene``. Keys: background,
    color, shape, position (single objects with a stated position), relation (two objects),
    count, and all."""
    bg, blobs = analyse(image)
    res = {"background": bg == scene.bg, "count": len(blobs) == len(scene.objects)}
    if scene.relation:
        res["color"] = sorted(o.color for o in scene.objects) == sorted(b.color for b in blobs)
        res["shape"] = sorted(o.shape for o in scene.objects) == sorted(b.shape for b in blobs)
        res["relation"] = _relation_holds(scene, blobs)
    else:
        o, b = scene.objects[0], (blobs[0] if blobs else None)
        res["color"] = b is not None and b.color == o.color
        res["shape"] = b is not None and b.shape == o.shape
        if o.position:
            res["position"] = b is not None and position_of(b.center) == o.position
    res["all"] = all(res.values())
    return res
