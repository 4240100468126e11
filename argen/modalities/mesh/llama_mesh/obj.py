"""OBJ text -> trimesh, and the strict check of LLaMA-Mesh's OBJ form.

The strict form is what :mod:`.grammar` lets a model write: ``v x y z`` lines (integers in
0..coord_max, no leading zeros, single spaces), then ``f i j k`` lines (three distinct 1-based
indices of vertices already written), every line ended by a newline, at least one face.
:func:`obj_to_mesh` is lenient, for any model's text: it keeps the vertex and face lines it can
read (numbers in any float form, ``i/t/n`` face corners, polygons fanned into triangles) and
skips everything else, so prose around the mesh does no harm.
"""

from __future__ import annotations

import re

import numpy as np
import trimesh

_V = re.compile(r"v (0|[1-9][0-9]*) (0|[1-9][0-9]*) (0|[1-9][0-9]*)")
_F = re.compile(r"f ([1-9][0-9]*) ([1-9][0-9]*) ([1-9][0-9]*)")


def is_well_formed(text: str, coord_max: int = 63, max_faces: int | None = None) -> bool:
    """Does ``text`` follow LLaMA-Mesh's strict OBJ form (the grammar's language)?"""
    lines = text.split("\n")
    if len(lines) < 2 or lines[-1] != "":
        return False  # every line ends with a newline
    nv = nf = 0
    for line in lines[:-1]:
        if m := _V.fullmatch(line):
            if nf or any(int(x) > coord_max for x in m.groups()):
                return False
            nv += 1
        elif m := _F.fullmatch(line):
            idx = [int(x) for x in m.groups()]
            if nv < 3 or len(set(idx)) < 3 or max(idx) > nv:
                return False
            nf += 1
        else:
            return False
    return nf > 0 and (max_faces is None or nf <= max_faces)


def read_obj(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) and triangles (F, 3) (0-based) of every readable ``v``/``f`` line;
    faces that name a missing vertex are dropped."""
    verts, polys = [], []
    for raw in text.splitlines():
        parts = raw.split()
        if not parts:
            continue
        if parts[0] == "v" and len(parts) >= 4:
            try:
                verts.append([float(x) for x in parts[1:4]])
            except ValueError:
                continue
        elif parts[0] == "f" and len(parts) >= 4:
            try:
                polys.append([int(p.split("/")[0]) for p in parts[1:]])
            except ValueError:
                continue
    nv = len(verts)
    tris = []
    for poly in polys:
        idx = [i - 1 if i > 0 else nv + i for i in poly]  # OBJ: 1-based, negative from the end
        if all(0 <= i < nv for i in idx):
            tris.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))
    v = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    v = v if np.isfinite(v).all() else np.nan_to_num(v)
    return v, np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def obj_to_mesh(text: str, clean: bool = True) -> trimesh.Trimesh:
    """A trimesh of the text's vertices and faces, coordinates as written. ``clean`` merges
    identical vertices and drops degenerate and repeated faces (``clean=False`` keeps the faces
    exactly as written, to measure a model's raw output)."""
    v, f = read_obj(text)
    mesh = trimesh.Trimesh(vertices=v, faces=f, process=False)
    if clean and len(f):
        mesh.merge_vertices()
        f = np.asarray(mesh.faces)
        keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2]) & (mesh.area_faces > 1e-12)
        f = f[keep]
        if len(f):
            _, first = np.unique(np.sort(f, 1), axis=0, return_index=True)
            f = f[np.sort(first)]
        mesh = trimesh.Trimesh(vertices=mesh.vertices, faces=f, process=False)
        mesh.remove_unreferenced_vertices()
    return mesh
