"""Validity figures for any mesh model's outputs (``argen eval mesh --model DIR`` will print them).

Each output is judged as decoded, before any cleaning, so a model that writes broken meshes is
not flattered by the detokeniser's repairs: ``parse`` whether the model's own output format was
well formed (token grammar, OBJ lines), ``watertight`` trimesh's closed-and-consistently-wound
test, ``clean`` at least one face and none degenerate (a repeated vertex or zero area) or
duplicated (the vertex set of another face, in either winding), ``faces`` the mean face count.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import trimesh


def degenerate_faces(mesh: trimesh.Trimesh) -> np.ndarray:
    """Bool (F,): faces with a repeated vertex index or (numerically) zero area."""
    f = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    if not len(f):
        return np.zeros(0, dtype=bool)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    repeated = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    scale = max(float(np.ptp(v, axis=0).max()), 1e-12) if len(v) else 1.0
    return repeated | (np.linalg.norm(cross, axis=1) <= 1e-12 * scale * scale)


def duplicate_faces(mesh: trimesh.Trimesh) -> np.ndarray:
    """Bool (F,): faces whose vertex set (same vertex positions, any order) came earlier."""
    f = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    if not len(f):
        return np.zeros(0, dtype=bool)
    # vertex positions, not indices: an unmerged soup repeats positions under new indices
    _, vid = np.unique(np.asarray(mesh.vertices, dtype=np.float64), axis=0, return_inverse=True)
    keys = np.sort(vid.reshape(-1)[f], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    dup = np.ones(len(f), dtype=bool)
    dup[first] = False
    return dup


def check_mesh(mesh: trimesh.Trimesh | None) -> dict:
    """``{"faces", "clean", "watertight"}`` of one decoded mesh (None: nothing decoded)."""
    if mesh is None or len(mesh.faces) == 0:
        return {"faces": 0, "clean": False, "watertight": False}
    clean = not degenerate_faces(mesh).any() and not duplicate_faces(mesh).any()
    return {"faces": int(len(mesh.faces)), "clean": bool(clean), "watertight": bool(mesh.is_watertight)}


def mesh_metrics(meshes: Iterable[trimesh.Trimesh | None], parsed: Iterable[bool]) -> dict:
    """Shares over a model's outputs: ``parse``, ``watertight``, ``clean`` (no degenerate or
    duplicate face), and the mean face count ``faces``; ``n`` outputs. ``parsed[i]`` says
    whether output i was well formed in the model's own format."""
    rows = [{**check_mesh(m), "parse": bool(p)} for m, p in zip(meshes, parsed, strict=True)]
    n = len(rows)

    def share(key: str) -> float:
        return round(sum(r[key] for r in rows) / n, 4) if n else 0.0

    return {"n": n, "parse": share("parse"), "watertight": share("watertight"), "clean": share("clean"),
            "faces": round(float(np.mean([r["faces"] for r in rows])), 2) if n else 0.0}


def summarize(samples) -> dict:
    """:func:`mesh_metrics` of samples with ``.raw`` (the mesh as decoded) and ``.parsed``
    (what ``MeshXL.sample`` and ``LlamaMesh.sample`` return)."""
    samples = list(samples)
    return mesh_metrics([s.raw for s in samples], [s.parsed for s in samples])
