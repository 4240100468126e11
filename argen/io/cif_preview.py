"""A PNG drawing of a crystal's unit cell (matplotlib, imported on use): the cell's 12 edges
and each atom as a sphere coloured by element, periodic images on the cell's faces included."""

from __future__ import annotations

import itertools
from pathlib import Path

from argen.errors import ArgenError
from argen.io.atomic import atomic_path


def _images(frac, tol: float = 1e-3):
    """A fractional position (3,) and its copies on the cell's faces, edges and corners."""
    shifts = [[0, 1] if abs(f) < tol else [0, -1] if abs(f - 1) < tol else [0] for f in frac]
    return [[f + s for f, s in zip(frac, combo)] for combo in itertools.product(*shifts)]


def draw_cell(structure, path: str | Path, title: str = "") -> Path:
    """Draw ``structure`` (a pymatgen Structure) to ``path`` (PNG), atomically."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ArgenError("--preview needs matplotlib", hint='pip install matplotlib') from None
    import numpy as np

    m = structure.lattice.matrix  # (3, 3) rows a, b, c
    fig = plt.figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot(projection="3d")
    corners = np.array(list(itertools.product([0, 1], repeat=3)), dtype=float)  # (8, 3)
    for i, j in itertools.combinations(range(8), 2):
        if np.abs(corners[i] - corners[j]).sum() == 1:  # an edge joins corners differing in one axis
            seg = np.stack([corners[i], corners[j]]) @ m
            ax.plot(*seg.T, color="0.4", lw=1)
    elements = sorted({s.specie.symbol for s in structure})
    cmap = plt.get_cmap("tab10")
    for k, el in enumerate(elements):
        pts = [np.array(p) @ m for s in structure if s.specie.symbol == el for p in _images(s.frac_coords % 1.0)]
        pts = np.array(pts)  # (N, 3) cartesian
        radius = next(s.specie.atomic_radius for s in structure if s.specie.symbol == el) or 1.0
        ax.scatter(*pts.T, s=300 * float(radius), color=cmap(k % 10), edgecolors="k", depthshade=True, label=el)
    ax.set_title(title or structure.composition.reduced_formula)
    ax.legend(loc="upper right")
    ax.set_axis_off()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return path
