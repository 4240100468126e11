"""MeshXL's face serialisation: mesh <-> token sequence, exactly invertible.

Facts from OpenMeshLab/MeshXL (GitHub, commit 2fa9034):

- ``models/mesh_xl/get_model.py``: the vocabulary is the 128 coordinate values, then
  ``bos = 128``, ``eos = 129``, ``pad = 130`` (``codebook_size + 0/1/2``), 131 ids in all; a
  training sequence is ``<bos> coordinates <eos>``; generation starts from ``<bos>`` alone.
- ``models/mesh_xl/tokenizer.py``: each face is written as its three vertices' coordinates in
  the order the vertex array stores them (no axis permutation): 9 tokens a face. Coordinates
  in [-1, 1] are discretised to ``round((t + 1) / 2 * 128 - 0.5)`` clipped to [0, 127] (torch
  rounds half to even, as numpy does) and read back as the bin centre
  ``(q + 0.5) / 128 * 2 - 1``.
- ``datasets/sft/base_dataset.py`` (``normalize_mesh``): a mesh is centred on its bounding box
  and scaled so its longest side spans [-1, 1].
- ``eval_utils/sample_generation.py``: generated faces are written as triangles in the token
  order, so the winding a sequence states is kept.

The face order is not in the released code (the data preprocessing is unreleased); the paper
(Chen et al. 2024, arXiv 2405.20853, Sec. 3) follows PolyGen/MeshGPT: vertices sorted by
(z, y, x) with z the primary key, each face cyclically permuted to start at its lowest vertex
(which keeps its normal), faces sorted by their vertices. This module implements that order:
vertex keys ``(z * 128 + y) * 128 + x``; a face ``(a, b, c)`` starts at its smallest key and
keeps its winding; faces sorted lexicographically by their key triples. Duplicate vertices are
merged; faces with a repeated vertex, collinear corners (zero area on the grid) or the vertex
set of an earlier face are dropped.
"""

from __future__ import annotations

import numpy as np
import trimesh

LEVELS = 128
BOS, EOS, PAD = LEVELS, LEVELS + 1, LEVELS + 2
VOCAB = LEVELS + 3
PER_FACE = 9  # tokens a face: three vertices of three coordinates (x, y, z)
PLACE = np.array([1, LEVELS, LEVELS * LEVELS], dtype=np.int64)  # weight of x, y, z in a vertex key


def normalize(vertices: np.ndarray) -> np.ndarray:
    """Vertices (N, 3) centred on their bounding box, the longest side scaled to [-1, 1]."""
    v = np.asarray(vertices, dtype=np.float64)
    lo, hi = v.min(0), v.max(0)
    return (v - (lo + hi) / 2) / max(float((hi - lo).max()), 1e-12) * 2.0


def discretize(v: np.ndarray) -> np.ndarray:
    """Coordinates in [-1, 1] -> bins 0..127."""
    return np.clip(np.round((np.asarray(v, dtype=np.float64) + 1.0) / 2.0 * LEVELS - 0.5), 0, LEVELS - 1).astype(np.int64)


def undiscretize(q: np.ndarray) -> np.ndarray:
    """Bins -> their centres in [-1, 1]."""
    return (np.asarray(q, dtype=np.float64) + 0.5) / LEVELS * 2.0 - 1.0


def keys_of(q: np.ndarray) -> np.ndarray:
    """Quantised vertices (..., 3) as (x, y, z) -> sort keys ``(z * 128 + y) * 128 + x``."""
    return np.asarray(q, dtype=np.int64) @ PLACE


def unkey(k: np.ndarray) -> np.ndarray:
    """Keys (N,) -> quantised vertices (N, 3) as (x, y, z)."""
    k = np.asarray(k, dtype=np.int64)
    return np.stack([k % LEVELS, k // LEVELS % LEVELS, k // (LEVELS * LEVELS)], axis=-1)


def area2(q: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Twice the (L1) area of each face on the integer grid; 0 exactly for collinear corners."""
    v = np.asarray(q, dtype=np.int64)[faces]  # (F, 3, 3)
    return np.abs(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])).sum(-1)


def rotate_to_min(faces: np.ndarray) -> np.ndarray:
    """Each face (F, 3) cyclically shifted to start at its smallest index (winding kept)."""
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    shift = faces.argmin(1)
    idx = (shift[:, None] + np.arange(3)[None]) % 3
    return np.take_along_axis(faces, idx, 1)


def canonical(mesh: trimesh.Trimesh, normalize_first: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The mesh in MeshXL's order: vertices (N, 3) ints (x, y, z) sorted by key, and faces
    (F, 3) each starting at its smallest index, sorted, without degenerate or repeated faces.
    ``normalize_first=False`` quantises the coordinates as they are (already in [-1, 1])."""
    v = np.asarray(mesh.vertices, dtype=np.float64)
    if len(v) == 0 or len(mesh.faces) == 0:
        return np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64)
    q = discretize(normalize(v) if normalize_first else v)
    keys, inverse = np.unique(keys_of(q), return_inverse=True)  # merges duplicates and sorts
    verts = unkey(keys)
    faces = inverse.reshape(-1)[np.asarray(mesh.faces, dtype=np.int64)]
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    faces = rotate_to_min(faces[area2(verts, faces) > 0])
    faces = faces[np.lexsort(faces.T[::-1])] if len(faces) else faces  # by (a, b, c)
    if len(faces):  # one face per vertex set: the first in the sort (the other winding goes)
        _, first = np.unique(np.sort(faces, 1), axis=0, return_index=True)
        faces = faces[np.sort(first)]
    used = np.unique(faces)
    remap = np.full(len(verts), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return verts[used], remap[faces]


def tokenize(mesh: trimesh.Trimesh, normalize_first: bool = True) -> list[int]:
    """``[BOS, x, y, z, x, y, z, x, y, z, ..., EOS]``: the sequence MeshXL reads and writes."""
    verts, faces = canonical(mesh, normalize_first)
    coords = verts[faces].reshape(-1)  # (F * 9,) in (x, y, z) order per vertex
    return [BOS, *coords.tolist(), EOS]


def split_faces(tokens: list[int]) -> tuple[list[tuple[int, ...]], bool]:
    """The 9-token faces of a sequence (an optional leading BOS, read up to EOS), and whether
    the sequence is well formed: only coordinates, whole faces, at least one, ended by EOS.
    Faces holding a non-coordinate token or left unfinished are dropped (as MeshXL masks them)."""
    toks = list(tokens)
    if toks and toks[0] == BOS:
        toks = toks[1:]
    ended = EOS in toks
    body = toks[:toks.index(EOS)] if ended else toks
    faces = [tuple(body[i:i + PER_FACE]) for i in range(0, len(body) - PER_FACE + 1, PER_FACE)]
    good = [f for f in faces if all(0 <= t < LEVELS for t in f)]
    well_formed = ended and len(body) % PER_FACE == 0 and len(good) == len(faces) and len(faces) > 0
    return good, well_formed


def detokenize(tokens: list[int], clean: bool = True) -> trimesh.Trimesh:
    """A mesh in [-1, 1] from any token list: identical vertices merged, faces in the order and
    winding written. ``clean`` drops faces with a repeated vertex, collinear corners or the
    vertex set of an earlier face (``clean=False`` keeps them, to measure a model's raw output).
    On a canonical sequence ``tokenize(detokenize(t), normalize_first=False) == t``."""
    faces, _ = split_faces(tokens)
    if not faces:
        return trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64), process=False)
    q = np.array(faces, dtype=np.int64).reshape(-1, 3)  # (3F, 3) as (x, y, z)
    keys, inverse = np.unique(keys_of(q), return_inverse=True)
    verts, f = unkey(keys), inverse.reshape(-1, 3)
    if clean:
        distinct = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
        f = f[distinct & (area2(verts, f) > 0)]
        if len(f):
            _, first = np.unique(np.sort(f, 1), axis=0, return_index=True)
            f = f[np.sort(first)]
    mesh = trimesh.Trimesh(vertices=undiscretize(verts), faces=f, process=False)
    if clean:
        mesh.remove_unreferenced_vertices()
    return mesh


def is_canonical(tokens: list[int]) -> bool:
    """Is the sequence exactly what :func:`tokenize` writes for some mesh (well formed, every
    face valid, starting at its smallest vertex, faces strictly increasing, no repeated set)?"""
    faces, ok = split_faces(tokens)
    if not ok:
        return False
    k = keys_of(np.array(faces, dtype=np.int64).reshape(-1, 3, 3))  # (F, 3)
    if (k[:, 1] <= k[:, 0]).any() or (k[:, 2] <= k[:, 0]).any() or (k[:, 1] == k[:, 2]).any():
        return False
    q = unkey(k.reshape(-1))
    if (area2(q, np.arange(len(q)).reshape(-1, 3)) == 0).any():
        return False
    rows = [tuple(r) for r in k.tolist()]
    if any(a >= b for a, b in zip(rows, rows[1:])):
        return False
    return len({tuple(sorted(r)) for r in rows}) == len(rows)
