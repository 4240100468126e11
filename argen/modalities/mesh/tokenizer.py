"""Mesh <-> token sequence (MeshGPT / MeshAnything V2 style) and the mesh model's layout.

Tokenising: normalise the mesh into the unit cube ([-0.5, 0.5]^3, centred on its bounding box,
scaled by its longest side), quantise each coordinate to 7 bits, merge duplicate vertices,
drop degenerate and duplicate faces, sort vertices by (z, y, x) and each face's vertex
indices ascending, then faces lexicographically. Facts from buaacyw/MeshAnythingV2
``adjacent_mesh_tokenization.py`` (``mesh_sort``): quantisation ``round((v + 0.5) * 128 - 0.5)``
clipped to [0, 127], vertices ordered with ``np.lexsort(vertices.T)`` (z is the primary key),
vertex indices sorted inside each face and faces sorted lexicographically. Each vertex is
written as three coordinate tokens in (z, y, x) order (PolyGen's order), so comparing token
strings compares vertices in sort order - the sampling constraint relies on that.

Sequences (coordinate tokens 0..127, then SEP, BOS, EOS)::

    plain:     v v v SEP v v v SEP ... v v v EOS            (a face is 9 coordinate tokens)
    adjacent:  v v v v v SEP v v v v EOS                    (MeshAnything V2)

Adjacent-mesh tokenisation (facts from the same file, ``adjacent_mesh_tokenization``): start
with the smallest unvisited face; while an unvisited face contains the last two vertices
written, write only its third vertex (the smallest such vertex index); otherwise write SEP
and start again from the smallest unvisited face. Sorting inside faces loses their winding;
:func:`detokenize` restores a consistent outward winding with trimesh.

:func:`detokenize` accepts any token list and always returns a valid ``trimesh.Trimesh``:
malformed groups, degenerate and duplicate faces are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

from argen.engine.config import DictConfig
from argen.engine.word_prefix import word_prefix_ids

BITS = 7
LEVELS = 1 << BITS  # 128 coordinate values
SEP, BOS, EOS = LEVELS, LEVELS + 1, LEVELS + 2


def normalize(vertices: np.ndarray) -> np.ndarray:
    """Vertices (N, 3) centred on their bounding box and scaled so the longest side is 1."""
    v = np.asarray(vertices, dtype=np.float64)
    lo, hi = v.min(0), v.max(0)
    return ((v - (lo + hi) / 2) / max(float((hi - lo).max()), 1e-12)).clip(-0.5, 0.5)


def quantize(v: np.ndarray) -> np.ndarray:
    """Unit-cube coordinates -> ints in [0, 127] (each value stands for the centre of its bin)."""
    return np.clip(np.round((v + 0.5) * LEVELS - 0.5), 0, LEVELS - 1).astype(np.int64)


def dequantize(q: np.ndarray) -> np.ndarray:
    return (np.asarray(q, dtype=np.float64) + 0.5) / LEVELS - 0.5


def vertex_key(q: np.ndarray) -> np.ndarray:
    """One integer per quantised vertex (N, 3 as x, y, z) whose order is the (z, y, x) sort."""
    q = np.asarray(q, dtype=np.int64)
    return (q[..., 2] * LEVELS + q[..., 1]) * LEVELS + q[..., 0]


def canonical(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Quantised, cleaned, sorted mesh: vertices (N, 3) ints (x, y, z) sorted by (z, y, x), and
    faces (F, 3) with ascending indices, sorted lexicographically."""
    q = quantize(normalize(mesh.vertices))
    keys, inverse = np.unique(vertex_key(q), return_inverse=True)  # merges duplicates and sorts
    verts = np.stack([keys % LEVELS, keys // LEVELS % LEVELS, keys // (LEVELS * LEVELS)], 1)
    faces = np.sort(inverse.reshape(-1)[np.asarray(mesh.faces)], axis=1)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])]
    faces = faces[_area2(verts, faces) > 0]  # collinear corners: degenerate
    faces = np.unique(faces, axis=0) if len(faces) else faces.reshape(0, 3)  # also sorts
    used = np.unique(faces)
    remap = np.full(len(verts), -1)
    remap[used] = np.arange(len(used))
    return verts[used], remap[faces]


def _area2(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = verts[faces].astype(np.int64)  # (F, 3, 3)
    return np.abs(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])).sum(-1)


def _vertex_tokens(v: np.ndarray) -> list[int]:
    return [int(v[2]), int(v[1]), int(v[0])]  # (z, y, x)


def adjacent_order(faces: np.ndarray) -> list[int]:
    """Vertex indices in MeshAnything V2's adjacent order, -1 for a separator."""
    unvisited = {tuple(int(i) for i in f) for f in faces}
    by_edge: dict[tuple[int, int], list[int]] = {}
    for f in unvisited:
        for a, b, c in ((f[0], f[1], f[2]), (f[0], f[2], f[1]), (f[1], f[2], f[0])):
            by_edge.setdefault((a, b), []).append(c)
    seq: list[int] = []
    remaining = sorted(unvisited)
    pos = 0
    while True:
        while pos < len(remaining) and remaining[pos] not in unvisited:
            pos += 1
        if pos == len(remaining):
            return seq
        start = remaining[pos]
        if seq:
            seq.append(-1)
        seq.extend(start)
        unvisited.discard(start)
        while True:
            a, b = seq[-2], seq[-1]
            edge = (min(a, b), max(a, b))
            nxt = next((c for c in sorted(by_edge.get(edge, ()))
                        if tuple(sorted((a, b, c))) in unvisited), None)
            if nxt is None:
                break
            unvisited.discard(tuple(sorted((a, b, nxt))))
            seq.append(nxt)


def tokenize(mesh: trimesh.Trimesh, adjacent: bool = False) -> list[int]:
    """The mesh's tokens, ending with EOS (no BOS: the layout puts it after the caption)."""
    verts, faces = canonical(mesh)
    out: list[int] = []
    if adjacent:
        for i in adjacent_order(faces):
            out.extend([SEP] if i < 0 else _vertex_tokens(verts[i]))
    else:
        for k, f in enumerate(faces):
            if k:
                out.append(SEP)
            for i in f:
                out.extend(_vertex_tokens(verts[i]))
    return out + [EOS]


def parse_faces(tokens: list[int], adjacent: bool = False) -> list[tuple[tuple[int, int, int], ...]]:
    """Faces (each three (x, y, z) int vertices) a token list describes; malformed parts skipped.
    Reading stops at EOS; tokens outside the coordinate range other than SEP are ignored."""
    faces, group, coords = [], [], []
    for t in tokens:
        if t == EOS:
            break
        if t == SEP:  # a new face (plain) or a new strip (adjacent)
            group, coords = [], []
            continue
        if not 0 <= t < LEVELS:
            continue
        coords.append(int(t))
        if len(coords) < 3:
            continue
        group.append((coords[2], coords[1], coords[0]))
        coords = []
        if adjacent:
            if len(group) >= 3:
                faces.append(tuple(group[-3:]))
        elif len(group) == 3:
            faces.append(tuple(group))
            group = []
    return faces


def detokenize(tokens: list[int], adjacent: bool = False) -> trimesh.Trimesh:
    """A valid, cleaned mesh in the unit cube from any token list: duplicate vertices merged,
    degenerate and duplicate faces dropped, faces wound consistently (outward where closed)."""
    faces = parse_faces(tokens, adjacent)
    if not faces:
        return trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64))
    q = np.array(faces, dtype=np.int64).reshape(-1, 3)
    keys, inverse = np.unique(vertex_key(q), return_inverse=True)
    verts = np.stack([keys % LEVELS, keys // LEVELS % LEVELS, keys // (LEVELS * LEVELS)], 1)
    f = inverse.reshape(-1, 3)
    f = f[(_area2(verts, np.sort(f, 1)) > 0)]
    if len(f):
        _, first = np.unique(np.sort(f, 1), axis=0, return_index=True)
        f = f[np.sort(first)]
    mesh = trimesh.Trimesh(vertices=dequantize(verts), faces=f, process=False)
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces):
        with np.errstate(all="ignore"):  # open meshes have no volume to orient by
            trimesh.repair.fix_normals(mesh, multibody=True)
    return mesh


@dataclass
class MeshLayout(DictConfig):
    """How a mesh model lays out its sequence: a caption prefix of word ids (PAD-filled), BOS,
    then mesh tokens. Ids: [0, 128) coordinates, SEP, BOS, EOS, the words, PAD, NULL (the
    unconditional caption, for classifier-free guidance)."""

    words: list[str]
    adjacent: bool = True
    prefix_len: int = 3
    max_faces: int = 400
    max_seq_len: int = 1024  # mesh tokens the model was trained to handle (after BOS)
    dataset: str | None = "shapes3d"
    bits: int = BITS
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bits != BITS:
            raise ValueError(f"only {BITS}-bit coordinates are supported, got {self.bits}")

    sep, bos, eos = SEP, BOS, EOS

    @property
    def pad(self) -> int:
        return EOS + 1 + len(self.words)

    @property
    def null(self) -> int:
        return self.pad + 1

    @property
    def vocab_size(self) -> int:
        return self.null + 1

    @property
    def mesh_vocab(self) -> int:
        """Ids the head may predict: coordinates, SEP, BOS (never sampled) and EOS."""
        return EOS + 1

    def transformer_fields(self) -> dict:
        return {"vocab_size": self.vocab_size, "max_seq_len": self.prefix_len + 1 + self.max_seq_len,
                "prefix_len": self.prefix_len}

    def caption_ids(self, text: str) -> list[int]:
        """The caption's prefix ids (prefix_len); unknown words are a UsageError listing the vocabulary."""
        return word_prefix_ids(text, self.words, EOS + 1, self.prefix_len, self.pad, "a tall lamp")

    def null_ids(self) -> list[int]:
        return [self.null] * self.prefix_len

    def tokenize(self, mesh: trimesh.Trimesh) -> list[int]:
        return tokenize(mesh, self.adjacent)

    def detokenize(self, tokens: list[int]) -> trimesh.Trimesh:
        return detokenize(tokens, self.adjacent)
