"""The procedural "shapes" dataset for text-to-image: 64x64 RGB scenes and their captions.

Captions follow one grammar (other modules and tests rely on it)::

    a [small|large] <color> <shape>[ in the <position>][ on a <bg> background]
    a <color> <shape> <relation> a <color> <shape>[ on a <bg> background]

A caption without a background means black; without a size, a medium object; without a position,
anywhere. An object is never the colour of its background. Two colour-shape pairs (orange
square, magenta triangle) never appear in the training split, to measure compositional
generalisation. Sample ``i`` of a split is a pure function of ``(seed, split, i)``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# the prompt grammar lives with the product; the dataset re-exports it for its users
from argen.modalities.image.shapes_grammar import (  # noqa: F401
    BACKGROUNDS,
    COLORS,
    HELD_OUT,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZE,
    SIZES,
    VOCABULARY,
    Obj,
    Scene,
    parse_caption,
)


def draw(scene: Scene, rng: np.random.Generator) -> Image.Image:
    """Render ``scene`` (sizes and unstated positions drawn from ``rng``); sets scene.centers."""
    img = Image.new("RGB", (SIZE, SIZE), BACKGROUNDS[scene.bg])
    d = ImageDraw.Draw(img)
    if scene.relation:
        radii = [int(rng.integers(6, 9)) for _ in range(2)]
        centers = _related_centers(scene.relation, radii, rng)
    else:
        o = scene.objects[0]
        lo, hi = SIZES[o.size or "medium"]
        radii = [int(rng.integers(lo, hi + 1))]
        if o.position:
            cx, cy = POSITIONS[o.position]
            margin = radii[0] + 1  # jitter, but stay inside the picture
            centers = [(float(np.clip(cx + rng.integers(-3, 4), margin, SIZE - margin)),
                        float(np.clip(cy + rng.integers(-3, 4), margin, SIZE - margin)))]
        else:
            centers = [tuple(float(v) for v in rng.integers(radii[0] + 1, SIZE - radii[0] - 1, size=2))]
    for o, r, (cx, cy) in zip(scene.objects, radii, centers):
        color = COLORS[o.color]
        if o.shape == "circle":
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
        elif o.shape == "square":
            d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
        else:  # an upward triangle inscribed in the same box
            d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    scene.centers = list(centers)
    return img


def _related_centers(relation: str, radii: list[int], rng: np.random.Generator) -> list[tuple[float, float]]:
    """Centres where object 0 is clearly ``relation`` object 1: the main axis gap dominates."""
    r = max(radii) + 1
    along = sorted(rng.choice(np.arange(r, SIZE - r), size=2, replace=False))
    while along[1] - along[0] < 2 * r + 8:
        along = sorted(rng.choice(np.arange(r, SIZE - r), size=2, replace=False))
    first, second = (along[0], along[1]) if relation in ("left of", "above") else (along[1], along[0])
    across = rng.integers(r, SIZE - r, size=2)
    spread = abs(int(across[0]) - int(across[1]))
    limit = max(0, (along[1] - along[0]) // 2 - 4)
    if spread > limit:  # keep the cross-axis offset well below the main-axis gap
        across[1] = across[0] + np.sign(int(across[1]) - int(across[0])) * limit
    if relation in ("left of", "right of"):
        return [(float(first), float(across[0])), (float(second), float(across[1]))]
    return [(float(across[0]), float(first)), (float(across[1]), float(second))]


def random_scene(rng: np.random.Generator, split: str = "train") -> Scene:
    """A random scene. ``train`` never uses a held-out pair; ``heldout`` always uses one."""
    while True:
        bg = str(rng.choice(list(BACKGROUNDS)))
        two = rng.random() < 0.4
        objs = []
        for _ in range(2 if two else 1):
            color = str(rng.choice([c for c in COLORS if c != bg]))  # never the background's colour
            objs.append(Obj(color=color, shape=str(rng.choice(SHAPES))))
        pairs = {(o.color, o.shape) for o in objs}
        if (split == "train" and pairs & HELD_OUT) or (split == "heldout" and not pairs & HELD_OUT):
            continue
        if not two:
            o = objs[0]
            o.size = None if rng.random() < 0.4 else str(rng.choice(["small", "large"]))
            o.position = None if rng.random() < 0.3 else str(rng.choice(list(POSITIONS)))
        return Scene(objs, relation=str(rng.choice(RELATIONS)) if two else None,
                     background=None if bg == "black" and rng.random() < 0.5 else bg)


def sample(seed: int, i: int, split: str = "train") -> tuple[str, Image.Image, Scene]:
    """Sample ``i`` of ``split``: (caption, 64x64 RGB image, scene with object centres)."""
    salt = {"train": 0, "val": 1, "heldout": 2}[split]
    rng = np.random.default_rng([seed, salt, i])
    scene = random_scene(rng, "heldout" if split == "heldout" else "train")
    img = draw(scene, rng)
    return scene.caption(), img, scene


def render(seed: int, split: str, n: int, start: int = 0) -> tuple[list[str], np.ndarray, list[Scene]]:
    """Samples ``start .. start + n - 1`` of a split: captions, images (n, 64, 64, 3) uint8, scenes."""
    captions, images, scenes = [], np.empty((n, SIZE, SIZE, 3), dtype=np.uint8), []
    for k in range(n):
        caption, img, scene = sample(seed, start + k, split)
        captions.append(caption)
        images[k] = np.asarray(img)
        scenes.append(scene)
    return captions, images, scenes
