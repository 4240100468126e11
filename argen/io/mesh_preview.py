"""A shaded preview picture of a mesh from three views (three-quarter, front, top), rendered
headless with matplotlib (Agg): faces lit by a fixed light, painter-sorted by depth, with the
face and vertex counts under the views. Deterministic bytes; written with the metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from argen.io.figure import new_figure, pixels

VIEWS = (("three-quarter", 22, -55), ("front", 0, -90), ("top", 90, -90))  # (name, elevation, azimuth); z is up
PANEL = 300  # pixels per view
CAPTION = 44  # pixels of text under the views


def _draw(ax, mesh, elev: float, azim: float) -> None:
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    from argen.modalities.mesh.tokenizer import normalize

    ax.set_axis_off()
    ax.view_init(elev=elev, azim=azim)
    lim = (-0.55, 0.55)
    ax.set_xlim(*lim), ax.set_ylim(*lim), ax.set_zlim(*lim)
    ax.set_box_aspect((1, 1, 1), zoom=1.3)  # matplotlib's default leaves a wide empty margin
    if len(mesh.faces):
        v = normalize(mesh.vertices)
        tri = v[np.asarray(mesh.faces)]  # (F, 3, 3)
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.linalg.norm(normals, axis=1, keepdims=True).clip(min=1e-12)
        light = np.array([0.4, -0.5, 0.77])
        shade = 0.35 + 0.65 * np.abs(normals @ (light / np.linalg.norm(light)))  # two-sided
        colors = np.clip(shade[:, None] * np.array([0.55, 0.7, 0.95]), 0, 1)
        ax.add_collection3d(Poly3DCollection(tri, facecolors=colors, edgecolors=(0.1, 0.1, 0.15, 0.35), linewidths=0.3))


def counts(mesh) -> str:
    """"412 faces, 208 vertices" (singular where it is one)."""
    f, v = len(mesh.faces), len(mesh.vertices)
    return f"{f} face{'s' * (f != 1)}, {v} vert{'ices' if v != 1 else 'ex'}"


def render(mesh, panel: int = PANEL) -> np.ndarray:
    """uint8 (panel + CAPTION, 3 * panel, 3): ``mesh`` (any scale; normalised to the unit cube)
    from the three :data:`VIEWS`, each named, and its face and vertex counts under them."""
    fig = new_figure(3 * panel, panel + CAPTION)
    h = panel / (panel + CAPTION)
    for k, (name, elev, azim) in enumerate(VIEWS):
        ax = fig.add_axes((k / 3, 1 - h, 1 / 3, h), projection="3d")
        _draw(ax, mesh, elev, azim)
        fig.text((k + 0.5) / 3, 1 - h + 0.02, name, ha="center", va="bottom", fontsize=9, color="0.35")
    fig.text(0.5, (CAPTION / 2) / (panel + CAPTION), counts(mesh), ha="center", va="center", fontsize=12)
    return pixels(fig)


def write_preview(path: str | Path, mesh, meta: dict[str, Any] | None = None, panel: int = PANEL) -> Path:
    """Render ``mesh`` and write it as a PNG (atomically, with ``meta`` embedded)."""
    from argen.io.png import write_png

    return write_png(path, render(mesh, panel), meta)
