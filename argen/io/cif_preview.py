"""A PNG drawing of a crystal's unit cell: the cell's 12 edges, each atom of the cell once (at its
position wrapped into the cell) in its element's CPK colour of Jmol's table
(argen/io/element_colors.py), a legend, and under the picture the lattice parameters a, b, c,
alpha, beta, gamma and the space group. Written with the generation metadata, like every preview."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from argen.io.element_colors import element_rgb
from argen.io.figure import new_figure, pixels, plain

WIDTH, HEIGHT = 520, 600  # pixels of every crystal preview
WRAP_TOL = 1e-4  # fractional coordinates this close to 1 are drawn at 0: one atom, one ball


def wrapped(frac: np.ndarray) -> np.ndarray:
    """Fractional coordinates (N, 3) wrapped into [0, 1), so an atom on a face is drawn once."""
    f = np.mod(np.asarray(frac, dtype=np.float64), 1.0)
    f[f > 1.0 - WRAP_TOL] = 0.0
    return f


def spacegroup(structure, declared: str | None = None) -> str:
    """"Pm-3m (221)" as spglib finds it (tolerance 0.1 A, as the crystal checks use), else the
    space group the CIF declares, else "unknown"."""
    try:
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        sga = SpacegroupAnalyzer(structure, symprec=0.1)
        return f"{sga.get_space_group_symbol()} ({sga.get_space_group_number()})"
    except Exception:  # noqa: BLE001 - spglib fails on odd cells; the caption still shows the lattice
        return declared or "unknown"


def caption(structure, group: str) -> str:
    """The lines under the picture: a, b, c in angstrom, the angles in degrees, the space group."""
    lat = structure.lattice
    return (f"a = {lat.a:.4f} \u00c5    b = {lat.b:.4f} \u00c5    c = {lat.c:.4f} \u00c5\n"
            f"\u03b1 = {lat.alpha:.2f}\u00b0    \u03b2 = {lat.beta:.2f}\u00b0    \u03b3 = {lat.gamma:.2f}\u00b0\n"
            f"space group {group}")


def atoms(structure) -> list[dict[str, Any]]:
    """What is drawn: one entry per site of the cell, {"element", "frac" (wrapped), "cart", "rgb"}."""
    frac = wrapped(np.array([s.frac_coords for s in structure]).reshape(-1, 3))
    cart = frac @ structure.lattice.matrix  # (N, 3)
    out = []
    for site, f, c in zip(structure, frac, cart):
        el = site.specie.symbol if hasattr(site.specie, "symbol") else str(site.specie)
        out.append({"element": el, "frac": f, "cart": c, "rgb": element_rgb(el)})
    return out


def _radius(structure, element: str) -> float:
    """Atomic radius in angstrom (1.5 where pymatgen has none)."""
    for s in structure:
        if getattr(s.specie, "symbol", None) == element:
            return float(getattr(s.specie, "atomic_radius", None) or 1.5)
    return 1.5


def render_cell(structure, title: str = "", declared_group: str | None = None) -> np.ndarray:
    """uint8 (HEIGHT, WIDTH, 3): the cell of ``structure`` (a pymatgen Structure)."""
    from matplotlib.lines import Line2D

    fig = new_figure(WIDTH, HEIGHT)
    ax = fig.add_axes((0.0, 0.2, 1.0, 0.72), projection="3d")
    ax.set_axis_off()
    ax.view_init(elev=18, azim=-62)
    m = structure.lattice.matrix  # (3, 3) rows a, b, c
    unit = np.array(list(itertools.product([0, 1], repeat=3)), dtype=float)  # (8, 3) fractional corners
    corners = unit @ m
    for i, j in itertools.combinations(range(8), 2):
        if np.abs(unit[i] - unit[j]).sum() == 1:  # an edge joins corners that differ in one axis
            ax.plot(*np.stack([corners[i], corners[j]]).T, color="0.35", lw=1.0)
    lo, hi = corners.min(0), corners.max(0)
    span = float((hi - lo).max()) or 1.0
    centre = (lo + hi) / 2
    for setter, k in ((ax.set_xlim, 0), (ax.set_ylim, 1), (ax.set_zlim, 2)):
        setter(centre[k] - span / 2, centre[k] + span / 2)
    ax.set_box_aspect((1, 1, 1))
    drawn = atoms(structure)
    elements = list(dict.fromkeys(a["element"] for a in drawn))
    px_per_a = 0.72 * HEIGHT / (span * 1.7)  # the cell's longest extent takes about 60% of the axes
    for el in elements:
        pts = np.array([a["cart"] for a in drawn if a["element"] == el])  # (n, 3)
        diameter_pt = 2 * 0.4 * _radius(structure, el) * px_per_a * 72 / 100  # balls at 40% of the atomic radius
        rgb = np.array(element_rgb(el)) / 255
        # flat colour (no depth shading): the fill is the table's colour exactly
        ax.scatter(*pts.T, s=float(np.clip(diameter_pt, 6, 60)) ** 2, color=rgb, edgecolors="0.15", linewidths=0.8,
                   depthshade=False)
    handles = [Line2D([], [], marker="o", ls="", markersize=10, markerfacecolor=np.array(element_rgb(el)) / 255,
                      markeredgecolor="0.15", label=el) for el in elements]
    fig.legend(handles=handles, loc="upper right", frameon=False, fontsize=10)
    fig.text(0.5, 0.965, plain(title or structure.composition.reduced_formula, 60), ha="center", va="center",
             fontsize=13)
    fig.text(0.5, 0.1, caption(structure, spacegroup(structure, declared_group)), ha="center", va="center",
             fontsize=10.5, linespacing=1.6)
    return pixels(fig)


def write_cell_preview(path: str | Path, structure, meta: dict[str, Any] | None = None, title: str = "",
                       declared_group: str | None = None) -> Path:
    """Draw ``structure`` and write it as a PNG (atomically, ``meta`` embedded for `argen info`)."""
    from argen.io.png import write_png

    return write_png(path, render_cell(structure, title, declared_group), meta)
