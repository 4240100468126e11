"""A shaded preview picture of a mesh, rendered headless with matplotlib (Agg): faces lit by a
fixed light, painter-sorted by depth, from a three-quarter view. Deterministic bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def render(mesh, size: int = 320) -> np.ndarray:
    """uint8 (size, size, 3) picture of ``mesh`` (any scale; normalised to the unit cube)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    from argen.modalities.mesh.tokenizer import normalize

    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1), projection="3d")
    ax.set_axis_off()
    ax.view_init(elev=22, azim=-55)
    lim = (-0.55, 0.55)
    ax.set_xlim(*lim), ax.set_ylim(*lim), ax.set_zlim(*lim)
    ax.set_box_aspect((1, 1, 1))
    if len(mesh.faces):
        v = normalize(mesh.vertices)
        tri = v[np.asarray(mesh.faces)]  # (F, 3, 3)
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.linalg.norm(normals, axis=1, keepdims=True).clip(min=1e-12)
        light = np.array([0.4, -0.5, 0.77])
        shade = 0.35 + 0.65 * np.abs(normals @ (light / np.linalg.norm(light)))  # two-sided
        colors = np.clip(shade[:, None] * np.array([0.55, 0.7, 0.95]), 0, 1)
        poly = Poly3DCollection(tri, facecolors=colors, edgecolors=(0.1, 0.1, 0.15, 0.35), linewidths=0.3)
        ax.add_collection3d(poly)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


def write_preview(path: str | Path, mesh, meta: dict[str, Any] | None = None, size: int = 320) -> Path:
    """Render ``mesh`` and write it as a PNG (atomically, with ``meta`` embedded)."""
    from argen.io.png import write_png

    return write_png(path, render(mesh, size), meta)
