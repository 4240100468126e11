"""The procedural "shapes3d" dataset for text-to-mesh: small triangle meshes and their captions.

Captions follow one grammar (the mesh pipeline, its evaluation and tests rely on it)::

    a [tall|short|wide|narrow ]<object>

Objects are primitives (cube, box, tetrahedron, octahedron, pyramid, prism, hexprism,
cylinder, cone, sphere) and composed objects (table, chair, stool, lamp, arch), built with
trimesh, z up, each part a closed mesh. A modifier stretches the proportions it names (tall:
higher than usual, wide: broader, ...); without one the proportions are drawn from the
object's usual range. Every mesh has at most :data:`MAX_FACES` faces. Sample ``i`` of a split
is a pure function of ``(seed, split, i)``; the "val" split uses its own random streams, so
its meshes are held out from training.
"""

from __future__ import annotations

import numpy as np
import trimesh

from argen.errors import UsageError

# the prompt grammar lives with the product; the dataset re-exports it for its users
from argen.modalities.mesh.grammar import (  # noqa: F401
    COMPOSED,
    MAX_FACES,
    MODIFIERS,
    NO_MODIFIERS,
    OBJECTS,
    PRIMITIVES,
    SEGMENTS,
    SPLITS,
    VOCABULARY,
    MeshSample,
    caption_of,
    parse_caption,
)


def _scales(rng: np.random.Generator, modifier: str | None) -> tuple[float, float]:
    """(width factor, height factor) around 1 for a modifier."""
    if modifier == "tall":
        return rng.uniform(0.85, 1.0), rng.uniform(1.6, 2.0)
    if modifier == "short":
        return rng.uniform(0.9, 1.1), rng.uniform(0.45, 0.6)
    if modifier == "wide":
        return rng.uniform(1.6, 2.0), rng.uniform(0.85, 1.0)
    if modifier == "narrow":
        return rng.uniform(0.5, 0.65), rng.uniform(0.9, 1.1)
    return rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)


def box(lo, hi) -> trimesh.Trimesh:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return trimesh.creation.box(extents=hi - lo, transform=trimesh.transformations.translation_matrix((lo + hi) / 2))


def cylinder(radius: float, z0: float, z1: float, sections: int = SEGMENTS, xy=(0.0, 0.0)) -> trimesh.Trimesh:
    m = trimesh.creation.cylinder(radius=radius, height=z1 - z0, sections=sections)
    m.apply_translation((xy[0], xy[1], (z0 + z1) / 2))
    return m


def cone(radius: float, z0: float, z1: float, sections: int = SEGMENTS) -> trimesh.Trimesh:
    m = trimesh.creation.cone(radius=radius, height=z1 - z0, sections=sections)
    m.apply_translation((0, 0, z0))
    return m


def frustum(r0: float, r1: float, z0: float, z1: float, sections: int = SEGMENTS) -> trimesh.Trimesh:
    """A closed truncated cone: rings of radius r0 at z0 and r1 at z1."""
    a = np.linspace(0, 2 * np.pi, sections, endpoint=False)
    ring0 = np.stack([r0 * np.cos(a), r0 * np.sin(a), np.full_like(a, z0)], 1)
    ring1 = np.stack([r1 * np.cos(a), r1 * np.sin(a), np.full_like(a, z1)], 1)
    return trimesh.convex.convex_hull(np.concatenate([ring0, ring1]))


def _hull(points) -> trimesh.Trimesh:
    return trimesh.convex.convex_hull(np.asarray(points, float))


def _legs(rng, w, d, h, thick, count=4) -> list[trimesh.Trimesh]:
    inset = thick * rng.uniform(0.3, 0.8)
    xs, ys = (-w / 2 + inset, w / 2 - inset - thick), (-d / 2 + inset, d / 2 - inset - thick)
    corners = [(x, y) for x in xs for y in ys][:count]
    return [box((x, y, 0), (x + thick, y + thick, h)) for x, y in corners]


def build(obj: str, modifier: str | None, rng: np.random.Generator) -> trimesh.Trimesh:
    """One object's mesh (z up, not yet normalised) with proportions drawn from ``rng``."""
    sw, sh = _scales(rng, None if obj in NO_MODIFIERS else modifier)
    u = rng.uniform
    if obj == "cube":
        return box((0, 0, 0), (1, 1, 1))
    if obj == "box":
        return box((0, 0, 0), (sw * u(1.3, 1.6), sw * u(0.7, 0.9), sh * u(0.5, 0.7)))
    if obj == "tetrahedron":
        return trimesh.Trimesh(*_regular("tetrahedron"))
    if obj == "octahedron":
        return trimesh.Trimesh(*_regular("octahedron"))
    if obj == "sphere":
        return trimesh.creation.icosphere(subdivisions=1)
    if obj == "pyramid":
        w = sw * u(0.9, 1.1)
        return _hull([(-w, -w, 0), (w, -w, 0), (-w, w, 0), (w, w, 0), (0, 0, sh * u(1.1, 1.4))])
    if obj == "prism":
        w, h = sw * u(0.9, 1.1), sh * u(1.2, 1.5)
        return _hull([(x, y, z) for z in (0, h) for x, y in ((-w, 0), (w, 0), (0, w * 1.6))])
    if obj == "hexprism":
        return cylinder(sw * u(0.45, 0.55), 0, sh * u(0.7, 0.9), sections=6)
    if obj == "cylinder":
        return cylinder(sw * u(0.35, 0.45), 0, sh * u(1.0, 1.3))
    if obj == "cone":
        return cone(sw * u(0.45, 0.55), 0, sh * u(1.1, 1.4))
    parts = _composed(obj, sw, sh, rng)
    return trimesh.util.concatenate(parts)


def _composed(obj: str, sw: float, sh: float, rng: np.random.Generator) -> list[trimesh.Trimesh]:
    u = rng.uniform
    if obj == "table":
        w, d, h, t = sw * u(1.3, 1.6), sw * u(0.8, 1.0), sh * u(0.7, 0.85), u(0.06, 0.1)
        return [box((-w / 2, -d / 2, h - t), (w / 2, d / 2, h))] + _legs(rng, w, d, h - t, u(0.08, 0.12))
    if obj == "chair":
        w, h, t = sw * u(0.5, 0.6), sh * u(0.45, 0.55), u(0.05, 0.08)
        back = box((-w / 2, w / 2 - t, h), (w / 2, w / 2, h + sh * u(0.5, 0.65)))
        return [box((-w / 2, -w / 2, h - t), (w / 2, w / 2, h)), back] + _legs(rng, w, w, h - t, u(0.05, 0.07))
    if obj == "stool":
        r, h, t = sw * u(0.3, 0.36), sh * u(0.65, 0.8), u(0.06, 0.09)
        k = u(0.05, 0.07)
        legs = [box((x - k / 2, y - k / 2, 0), (x + k / 2, y + k / 2, h - t))
                for x, y in ((r * 0.55, 0), (-r * 0.4, r * 0.45), (-r * 0.4, -r * 0.45))]
        return [cylinder(r, h - t, h)] + legs
    if obj == "lamp":
        rb, h = sw * u(0.25, 0.32), sh * u(1.0, 1.2)
        base_t, pole = u(0.05, 0.08), u(0.03, 0.05)
        shade0 = h * u(0.6, 0.7)
        return [cylinder(rb, 0, base_t), box((-pole, -pole, base_t), (pole, pole, shade0 + 0.05)),
                frustum(sw * u(0.32, 0.4), sw * u(0.15, 0.2), shade0, h, sections=6)]
    if obj == "arch":
        w, h, p, d = sw * u(1.0, 1.2), sh * u(0.8, 1.0), u(0.15, 0.2), u(0.25, 0.35)
        return [box((-w / 2, 0, 0), (-w / 2 + p, d, h - p)), box((w / 2 - p, 0, 0), (w / 2, d, h - p)),
                box((-w / 2, 0, h - p), (w / 2, d, h))]
    raise UsageError(f"unknown object {obj!r}", hint=f"objects: {' '.join(OBJECTS)}")


def _regular(kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "tetrahedron":
        v = np.array([(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)], float)
        f = np.array([(0, 1, 2), (0, 3, 1), (0, 2, 3), (1, 3, 2)])
    else:
        v = np.array([(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)], float)
        f = np.array([(0, 2, 4), (2, 1, 4), (1, 3, 4), (3, 0, 4), (2, 0, 5), (1, 2, 5), (3, 1, 5), (0, 3, 5)])
    return v, f


def random_caption(rng: np.random.Generator) -> tuple[str | None, str]:
    obj = str(rng.choice(OBJECTS))
    modifier = None
    if obj not in NO_MODIFIERS and rng.random() < 0.6:
        modifier = str(rng.choice(MODIFIERS))
    return modifier, obj


def sample(seed: int, i: int, split: str = "train", obj: str | None = None,
           modifier: str | None = None) -> MeshSample:
    """Sample ``i`` of ``split``; ``obj`` (and ``modifier``) fix the caption instead of drawing it."""
    rng = np.random.default_rng([seed, SPLITS[split], i])
    if obj is None:
        modifier, obj = random_caption(rng)
    elif obj in NO_MODIFIERS:
        modifier = None
    mesh = build(obj, modifier, rng)
    return MeshSample(caption_of(modifier, obj), obj, modifier, mesh)


def generate(seed: int, split: str, n: int, start: int = 0) -> list[MeshSample]:
    """Samples ``start .. start + n - 1`` of a split."""
    return [sample(seed, start + k, split) for k in range(n)]


def references(obj: str, modifier: str | None = None, count: int = 6, seed: int = 12345) -> list[trimesh.Trimesh]:
    """Reference meshes of a class with a modifier (ignored by classes that take none), from
    their own split, for class-adherence checks."""
    offset = 1000 * (MODIFIERS.index(modifier) + 1 if modifier in MODIFIERS else 0)
    return [sample(seed, offset + k, "ref", obj=obj, modifier=modifier).mesh for k in range(count)]
