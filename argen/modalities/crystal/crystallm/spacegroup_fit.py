"""Whether a cell composition can crystallise in a space group at all: every element's count
must be a sum of the group's site multiplicities (Wyckoff multiplicities in the conventional
cell, which is the cell CrystaLLM's CIFs describe; pymatgen's ``SpaceGroup.symmetry_ops`` are
in that cell, centring translations included). BaTiO3 (one Ba) cannot be in Fm-3m, whose
smallest site holds 4 atoms.

The multiplicities are found by orbit sizes, in exact integer arithmetic on the grid of
fractional coordinates k/24: every space-group operator maps that grid onto itself (rotation
parts are integer matrices in the conventional basis, translations multiples of 1/2, 1/3, 1/4
or 1/6), and every Wyckoff position has points on it (its fixed coordinates are multiples of
1/8, 1/6 or 1/4; its free ones take any grid value), so the set of orbit sizes on the grid is
the set of the group's multiplicities. It is a necessary condition (a fixed site may hold one
orbit only, which is not checked).
"""

from __future__ import annotations

from functools import lru_cache

GRID = 24


@lru_cache(maxsize=64)
def multiplicities(symbol: str) -> tuple[int, ...]:
    """Site multiplicities of the space group ``symbol`` (conventional cell), ascending."""
    import numpy as np
    from pymatgen.symmetry.groups import SpaceGroup

    ops = SpaceGroup(symbol).symmetry_ops
    rot = np.array([np.rint(op.rotation_matrix) for op in ops], dtype=np.int64)  # (O, 3, 3)
    shift = np.array([np.rint(op.translation_vector * GRID) for op in ops], dtype=np.int64)  # (O, 3) in grid steps
    g = np.arange(GRID)
    pts = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)  # (N, 3) grid points
    # one matrix product: images[n, o, i] = sum_j rot[o, i, j] * pts[n, j] (small integers, exact)
    images = np.rint(pts.astype(np.float64) @ rot.transpose(2, 0, 1).reshape(3, -1)).astype(np.int64)
    images = images.reshape(len(pts), len(rot), 3).transpose(1, 0, 2)  # (O, N, 3)
    images = (images + shift[:, None, :]) % GRID
    codes = np.sort(((images[..., 0] * GRID + images[..., 1]) * GRID + images[..., 2]).astype(np.int32), axis=0)  # (O, N)
    sizes = 1 + (np.diff(codes, axis=0) != 0).sum(axis=0)  # distinct images per point: its orbit size
    return tuple(int(s) for s in np.unique(sizes))


def representable(count: int, parts: tuple[int, ...]) -> bool:
    """Whether ``count`` is a sum of ``parts`` (each usable any number of times)."""
    reach = [True] + [False] * count
    for c in range(1, count + 1):
        reach[c] = any(p <= c and reach[c - p] for p in parts)
    return reach[count]


def misfit(counts: dict[str, int], symbol: str) -> str | None:
    """None if every count is a sum of the group's multiplicities, else the first element that is not."""
    parts = multiplicities(symbol)
    for el, n in counts.items():
        if not representable(n, parts):
            return el
    return None


def check_fit(composition, symbol: str | None) -> None:
    """A one-line UsageError unless ``composition`` (pymatgen Composition, the cell) can sit in ``symbol``."""
    from argen.errors import UsageError

    if symbol is None:
        return
    counts = {str(el): round(n) for el, n in composition.items()}
    bad = misfit(counts, symbol)
    if bad is None:
        return
    parts = multiplicities(symbol)
    reduced = {str(el): round(n) for el, n in composition.reduced_composition.items()}
    z = next((z for z in range(1, 25) if misfit({e: n * z for e, n in reduced.items()}, symbol) is None), None)
    shown = ", ".join(map(str, parts[:8])) + (", ..." if len(parts) > 8 else "")
    hint = f"try --formula-units {z}" if z else "choose another space group"
    raise UsageError(f"space group {symbol} does not fit {composition.formula.replace(' ', '')}: its sites hold "
                     f"{shown} atoms, and {counts[bad]} {bad} is no sum of those", hint=hint)
