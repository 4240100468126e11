"""The procedural "bouncing" dataset for video: one to three objects moving at constant velocity
on black, bouncing elastically off the walls, at 8 frames per second.

Captions list the objects (other modules and tests rely on this grammar)::

    a <color> <shape>
    a <color> <shape> and a <color> <shape>
    a <color> <shape>, a <color> <shape> and a <color> <shape>

``<color>`` comes from the image palette (:data:`argen.lab.data.shapes.COLORS`), ``<shape>`` is
circle or square; the objects of one clip have different colours. Objects are 3 to 6 px in
radius at 32x32 and move 1 to 3 px per frame; they pass over each other, smaller ones on top (so none is ever hidden whole),
or, with ``collide``, bounce elastically off each other too and never overlap (the classic bouncing-balls set-up).
Frames are drawn at 4x and box-filtered down, so motion is sub-pixel smooth. Clip ``i`` of a
split is a pure function of ``(seed, split, i)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from argen.modalities.image.shapes_grammar import COLORS

# the prompt grammar lives with the product; the dataset re-exports it for its users
from argen.modalities.video.grammar import (  # noqa: F401
    FPS,
    GRAMMAR,
    SHAPES,
    SIZE,
    parse_caption,
)

RADIUS = (3.0, 6.0)  # px at SIZE
SPEED = (1.0, 3.0)  # px per frame
SUPERSAMPLE = 4
SUBSTEPS = 8  # collision simulation steps per frame: objects move at most 0.4 px between checks
def reach(radius: float, shape: str) -> float:
    """How far from its centre an object reaches in any direction (its collision radius)."""
    return radius if shape == "circle" else radius * float(np.sqrt(2))


@dataclass
class Mover:
    color: str
    shape: str
    radius: float
    pos: tuple[float, float]  # centre (x, y) in px at frame 0
    vel: tuple[float, float]  # px per frame

    def positions(self, frames: int, size: int = SIZE) -> np.ndarray:
        """Centres (frames, 2): constant velocity, reflected at the walls (elastic bounce)."""
        lo, hi = self.radius, size - self.radius
        span = hi - lo
        raw = np.array(self.pos)[None] - lo + np.arange(frames)[:, None] * np.array(self.vel)[None]  # (T, 2)
        folded = np.mod(raw, 2 * span)  # unfold the bounces: a triangle wave between the walls
        return lo + np.where(folded > span, 2 * span - folded, folded)

    def reach(self) -> float:
        return reach(self.radius, self.shape)


def collide_tracks(movers: list[Mover], frames: int, size: int = SIZE) -> np.ndarray:
    """Centres (objects, frames, 2) of objects that bounce off the walls and off each other:
    equal masses, elastic, each object a disc of its :meth:`Mover.reach`, simulated in
    :data:`SUBSTEPS` steps a frame. Two objects touching and approaching exchange the parts of
    their velocities along the line between their centres, and are pushed apart if they overlap."""
    pos = np.array([m.pos for m in movers], dtype=np.float64)
    vel = np.array([m.vel for m in movers], dtype=np.float64)
    lo = np.array([m.radius for m in movers])[:, None]
    hi = size - lo
    reaches = np.array([m.reach() for m in movers])
    out = np.empty((len(movers), frames, 2))
    for t in range(frames):
        out[:, t] = pos
        for _ in range(SUBSTEPS):
            pos += vel / SUBSTEPS
            for a in range(len(movers)):
                for b in range(a + 1, len(movers)):
                    d = pos[b] - pos[a]
                    dist = float(np.hypot(*d))
                    gap = reaches[a] + reaches[b] - dist
                    if gap <= 0 or dist == 0:
                        continue
                    n = d / dist
                    closing = float((vel[b] - vel[a]) @ n)
                    if closing < 0:
                        vel[a] += closing * n
                        vel[b] -= closing * n
                    pos[a] -= gap / 2 * n
                    pos[b] += gap / 2 * n
            low, high = pos < lo, pos > hi  # the walls: reflect the position and the velocity
            pos = np.where(low, 2 * lo - pos, np.where(high, 2 * hi - pos, pos))
            vel = np.where(low | high, -vel, vel)
    return out


@dataclass
class Clip:
    movers: list[Mover]
    collide: bool = False  # the objects bounce off each other (else they pass over each other)

    def tracks(self, frames: int, size: int = SIZE) -> list[np.ndarray]:
        """Each object's centres (frames, 2), x then y."""
        if self.collide:
            return list(collide_tracks(self.movers, frames, size))
        return [m.positions(frames, size) for m in self.movers]

    def caption(self) -> str:
        names = [f"a {m.color} {m.shape}" for m in self.movers]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def random_clip(rng: np.random.Generator, size: int = SIZE, collide: bool = False) -> Clip:
    n = int(rng.integers(1, 4))
    colors = rng.choice(list(COLORS), size=n, replace=False)
    movers = []
    for c in colors:
        r = float(rng.uniform(*RADIUS)) * size / SIZE
        speed = float(rng.uniform(*SPEED)) * size / SIZE
        angle = float(rng.uniform(0, 2 * np.pi))
        pos = tuple(float(v) for v in rng.uniform(r, size - r, size=2))
        movers.append(Mover(str(c), str(rng.choice(SHAPES)), r, pos, (speed * np.cos(angle), speed * np.sin(angle))))
    for _ in range(1000 if collide else 0):  # colliding objects start apart: draw their places again
        if all(np.hypot(a.pos[0] - b.pos[0], a.pos[1] - b.pos[1]) >= a.reach() + b.reach()
               for k, a in enumerate(movers) for b in movers[k + 1:]):
            break
        for m in movers:
            m.pos = tuple(float(v) for v in rng.uniform(m.radius, size - m.radius, size=2))
    return Clip(movers, collide)


def render(clip: Clip, frames: int, size: int = SIZE) -> np.ndarray:
    """The clip's frames: uint8 (frames, size, size, 3)."""
    s = SUPERSAMPLE
    tracks = clip.tracks(frames, size)
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        img = Image.new("RGB", (size * s, size * s))
        draw = ImageDraw.Draw(img)
        for m, track in sorted(zip(clip.movers, tracks), key=lambda mt: -mt[0].radius):
            x, y = track[t] * s
            r = m.radius * s
            box = [x - r, y - r, x + r, y + r]
            (draw.ellipse if m.shape == "circle" else draw.rectangle)(box, fill=COLORS[m.color])
        out[t] = np.asarray(img.resize((size, size), Image.BOX))
    return out


def object_cells(clip: Clip, frames: int, grid: int, size: int = SIZE, rim: float = 1 / SUPERSAMPLE) -> np.ndarray:
    """Which cells of a ``grid`` x ``grid`` partition of each frame every object overlaps, from its
    geometry (centre, radius, shape): bool (objects, frames, grid, grid), rows then columns. The
    shape is grown by ``rim`` px (one supersampled pixel): :func:`render` draws with inclusive
    edges, so its anti-aliased border reaches that far past the radius."""
    cell = size / grid
    lo = np.arange(grid) * cell
    hi = lo + cell
    out = np.zeros((len(clip.movers), frames, grid, grid), dtype=bool)
    for k, (m, centre) in enumerate(zip(clip.movers, clip.tracks(frames, size))):  # centre (T, 2): x, y
        # per axis, the distance from the centre to the nearest point of each cell (0 inside it)
        near = [np.maximum(0, np.maximum(lo[None] - centre[:, a:a + 1], centre[:, a:a + 1] - hi[None])) for a in (0, 1)]
        dx, dy = near[0][:, None, :], near[1][:, :, None]  # (T, 1, grid), (T, grid, 1)
        r = m.radius + rim
        out[k] = dx ** 2 + dy ** 2 < r ** 2 if m.shape == "circle" else (dx < r) & (dy < r)
    return out


def sample(seed: int, i: int, split: str = "train", frames: int = 32, size: int = SIZE,
           collide: bool = False) -> tuple[str, np.ndarray, Clip]:
    """Clip ``i`` of ``split`` ("train" or "val"): (caption, frames (T, H, W, 3) uint8, clip)."""
    salt = {"train": 0, "val": 1}[split]
    clip = random_clip(np.random.default_rng([seed, salt, i]), size, collide)
    return clip.caption(), render(clip, frames, size), clip
