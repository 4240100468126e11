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

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from argen.errors import UsageError

SIZE = 64
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 230), "yellow": (240, 220, 40),
    "magenta": (220, 50, 220), "cyan": (40, 210, 220), "orange": (250, 140, 30), "white": (245, 245, 245),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"black": (0, 0, 0), "gray": (128, 128, 128), "white": (255, 255, 255)}
SHAPES = ("circle", "square", "triangle")
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (16, 16), "top right": (48, 16), "bottom left": (16, 48), "bottom right": (48, 48), "center": (32, 32),
}
RELATIONS = ("left of", "right of", "above", "below")
SIZES: dict[str, tuple[int, int]] = {"small": (5, 7), "medium": (8, 10), "large": (12, 14)}  # radius range, px
HELD_OUT = {("orange", "square"), ("magenta", "triangle")}
VOCABULARY = sorted({"a", "in", "the", "on", "background", "of", "small", "large", *COLORS, *BACKGROUNDS, *SHAPES,
                     *(w for p in POSITIONS for w in p.split()), *(w for r in RELATIONS for w in r.split())})


@dataclass
class Obj:
    color: str
    shape: str
    size: str | None = None  # None: medium, unstated
    position: str | None = None  # None: unstated


@dataclass
class Scene:
    objects: list[Obj]
    relation: str | None = None  # two objects: objects[0] <relation> objects[1]
    background: str | None = None  # None: black, unstated
    centers: list[tuple[float, float]] = field(default_factory=list)  # filled when rendered

    @property
    def bg(self) -> str:
        return self.background or "black"

    def caption(self) -> str:
        if self.relation:
            a, b = self.objects
            text = f"a {a.color} {a.shape} {self.relation} a {b.color} {b.shape}"
        else:
            o = self.objects[0]
            text = "a " + (f"{o.size} " if o.size else "") + f"{o.color} {o.shape}"
            if o.position:
                text += f" in the {o.position}"
        return text + (f" on a {self.background} background" if self.background else "")


def parse_caption(text: str) -> Scene:
    """The scene a caption describes; a caption outside the grammar is a UsageError."""
    words = text.strip().lower().split()
    unknown = sorted({w for w in words if w not in VOCABULARY})
    if unknown:
        raise UsageError(f"unknown word(s) in the prompt: {', '.join(unknown)}",
                         hint=f"the shapes models know: {' '.join(VOCABULARY)}")
    s = " ".join(words)
    background = None
    for bg in BACKGROUNDS:
        suffix = f" on a {bg} background"
        if s.endswith(suffix):
            s, background = s[: -len(suffix)], bg
            break
    for rel in RELATIONS:
        if f" {rel} a " in s:
            left, right = s.split(f" {rel} a ", 1)
            return Scene([_parse_object(left, text, allow_extras=False), _parse_object("a " + right, text, allow_extras=False)],
                         relation=rel, background=background)
    return Scene([_parse_object(s, text, allow_extras=True)], background=background)


def _parse_object(s: str, original: str, allow_extras: bool) -> Obj:
    words = s.split()
    position = None
    if allow_extras and " in the " in s:
        s, position = s.split(" in the ", 1)
        words = s.split()
        if position not in POSITIONS:
            raise UsageError(f"unknown position {position!r} in {original!r}", hint=f"positions: {', '.join(POSITIONS)}")
    size = None
    if allow_extras and len(words) == 4 and words[1] in ("small", "large"):
        size = words.pop(1)
    if len(words) != 3 or words[0] != "a" or words[1] not in COLORS or words[2] not in SHAPES:
        raise UsageError(f"cannot read {original!r} as a shapes caption",
                         hint="e.g. 'a red circle in the top left' or 'a blue square left of a green triangle'")
    return Obj(color=words[1], shape=words[2], size=size, position=position)


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
