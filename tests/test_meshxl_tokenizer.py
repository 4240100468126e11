"""MeshXL's serialisation: exact round trips on meshes built here, the canonical order, and the
sampling constraint (every sequence it lets through is canonical; it never dead-ends)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from argen.modalities.mesh.meshxl import tokenizer as tok
from argen.modalities.mesh.meshxl.constraint import MeshXLConstraint, follows_grammar, line_keys
from argen.modalities.mesh.metrics import mesh_metrics


def _meshes() -> list[trimesh.Trimesh]:
    rng = np.random.default_rng(0)
    soup = trimesh.Trimesh(rng.uniform(-3, 5, (30, 3)), rng.integers(0, 30, (40, 3)), process=False)
    return [trimesh.creation.box((1.0, 2.0, 0.5)), trimesh.creation.icosphere(2),
            trimesh.creation.cylinder(0.3, 1.0, sections=9), trimesh.creation.annulus(0.2, 0.5, 0.3),
            trimesh.creation.cone(0.4, 1.3), soup]


@pytest.mark.parametrize("i", range(6))
def test_round_trip_is_exact(i):
    mesh = _meshes()[i]
    tokens = tok.tokenize(mesh)
    assert tokens[0] == tok.BOS and tokens[-1] == tok.EOS and (len(tokens) - 2) % tok.PER_FACE == 0
    assert all(0 <= t < tok.LEVELS for t in tokens[1:-1])
    assert tok.is_canonical(tokens) and follows_grammar(tokens[1:])
    back = tok.detokenize(tokens)
    assert tok.tokenize(back, normalize_first=False) == tokens  # tokens -> mesh -> tokens
    assert tok.detokenize(tokens[1:]).faces.tolist() == back.faces.tolist()  # BOS optional
    verts, faces = tok.canonical(mesh)
    np.testing.assert_array_equal(back.vertices, tok.undiscretize(verts))  # mesh -> tokens -> mesh
    np.testing.assert_array_equal(back.faces, faces)
    # the sequence does not depend on how the mesh was stored: shuffled faces, shuffled vertex
    # array, each face started at another corner (same winding)
    rng = np.random.default_rng(i)
    perm = rng.permutation(len(mesh.vertices))
    inv = np.argsort(perm)
    f = inv[np.asarray(mesh.faces)][rng.permutation(len(mesh.faces))]
    f = np.roll(f, 1, axis=1)
    again = trimesh.Trimesh(np.asarray(mesh.vertices)[perm], f, process=False)
    assert tok.tokenize(again) == tokens


def test_order_and_winding():
    # one triangle: coordinates x, y, z per vertex; the smallest (z, y, x) vertex first, winding kept
    tri = trimesh.Trimesh([[1, 1, 1], [-1, -1, -1], [1, -1, 1]], [[0, 1, 2]], process=False)
    tokens = tok.tokenize(tri)
    assert tokens == [tok.BOS, 0, 0, 0, 127, 0, 127, 127, 127, 127, tok.EOS]  # (v1, v2, v0)
    back = tok.detokenize(tokens)
    normal = np.cross(*(back.vertices[back.faces[0, 1:]] - back.vertices[back.faces[0, 0]]))
    assert np.dot(normal, tri.face_normals[0]) > 0  # same orientation
    # a face repeated with the other winding, a degenerate face: dropped by tokenize
    v = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0]]
    mesh = trimesh.Trimesh(v, [[0, 1, 2], [0, 2, 1], [0, 1, 3]], process=False)
    assert (len(tok.tokenize(mesh)) - 2) // 9 == 1


def test_malformed_sequences_are_rejected():
    face = [0, 0, 0, 5, 0, 0, 0, 5, 0]  # three vertices (x, y, z), increasing keys
    assert follows_grammar(face + [tok.EOS])
    assert not follows_grammar(face[:8] + [tok.EOS])  # EOS inside a face
    assert not follows_grammar([tok.EOS])  # no face
    assert not follows_grammar(face[3:6] + face[:3] + face[6:] + [tok.EOS])  # does not start at its smallest
    assert follows_grammar(face[:3] + face[6:] + face[3:6] + [tok.EOS])  # the other winding is fine
    assert not follows_grammar(face + face + [tok.EOS])  # a repeated face
    assert not follows_grammar(face + face[:3] + face[6:] + face[3:6] + [tok.EOS])  # same set, other winding
    assert not follows_grammar(face[:3] + face[:3] + face[6:] + [tok.EOS])  # a repeated vertex
    assert not follows_grammar([0, 0, 0, 1, 0, 0, 2, 0, 0, tok.EOS])  # collinear
    assert not follows_grammar(face + [tok.BOS])
    later = [0, 0, 0, 5, 0, 0, 0, 6, 0]
    assert follows_grammar(face + later + [tok.EOS]) and not follows_grammar(later + face + [tok.EOS])
    # detokenize reads any list: broken faces are dropped, never an exception
    for junk in ([], [tok.EOS], face[:5], face + [tok.PAD] * 9 + face, [tok.BOS, tok.BOS, 3] * 9):
        assert isinstance(tok.detokenize(junk), trimesh.Trimesh)
    assert not tok.split_faces(face + [tok.PAD] * 9 + [tok.EOS])[1]


def test_line_keys_are_the_grid_points_on_the_line():
    p, q = np.array([3, 5, 7]), np.array([5, 8, 11])
    keys = line_keys(int(p @ tok.PLACE), int(q @ tok.PLACE))
    pts = tok.unkey(keys)
    d = q - p
    assert len(pts) > 2 and all((np.cross(x - p, d) == 0).all() for x in pts)
    assert ((pts >= 0) & (pts < tok.LEVELS)).all()
    t = np.arange(-200, 200)[:, None] * (d // np.gcd.reduce(d))
    inside = p + t
    inside = inside[((inside >= 0) & (inside < tok.LEVELS)).all(1)]
    assert sorted(keys.tolist()) == sorted((inside @ tok.PLACE).tolist())


def _walk(seed: int, max_faces: int, scale: float, top: float, ordered: bool = True) -> list[int]:
    """Sample from random logits under the constraint (``top`` pushes coordinates to the grid's
    last values, where the valid faces run out)."""
    g = torch.Generator().manual_seed(seed)
    budget = 9 * max_faces + 1
    c = MeshXLConstraint(1, max_faces, budget, ordered=ordered)
    out: list[list[int]] = [[]]
    for step in range(budget):
        logits = torch.randn(tok.VOCAB, generator=g) * scale
        logits[tok.EOS] -= 3 * scale  # favour long sequences
        logits[tok.LEVELS - 3:tok.LEVELS] += top
        mask = c(step, out)[0]
        assert mask.any()
        out[0].append(int(torch.multinomial(logits.masked_fill(~mask, float("-inf")).softmax(-1), 1, generator=g)))
        if out[0][-1] == tok.EOS:
            break
    return out[0]


@pytest.mark.parametrize("top", [0.0, 10.0, 40.0])
def test_constrained_walks_are_canonical(top):
    seqs = [_walk(seed, max_faces=(1, 4, 15)[seed % 3], scale=(1.0, 8.0)[seed % 2], top=top) for seed in range(12)]
    for s in seqs:
        assert s[-1] == tok.EOS and len(s) <= 9 * 15 + 1
        assert tok.is_canonical([tok.BOS] + s)
        assert tok.tokenize(tok.detokenize(s), normalize_first=False) == [tok.BOS] + s
    m = mesh_metrics([tok.detokenize(s, clean=False) for s in seqs], [tok.split_faces(s)[1] for s in seqs])
    assert m["parse"] == 1.0 and m["clean"] == 1.0


@pytest.mark.parametrize("top", [0.0, 40.0])
def test_unordered_walks_are_valid_meshes(top):
    seqs = [_walk(seed, max_faces=(2, 15)[seed % 2], scale=(1.0, 8.0)[seed % 2], top=top, ordered=False)
            for seed in range(10)]
    for s in seqs:
        assert s[-1] == tok.EOS and follows_grammar(s, ordered=False)
        raw = tok.detokenize(s, clean=False)
        assert len(raw.faces) == (len(s) - 1) // 9 and len(tok.detokenize(s).faces) == len(raw.faces)
    m = mesh_metrics([tok.detokenize(s, clean=False) for s in seqs], [tok.split_faces(s)[1] for s in seqs])
    assert m["parse"] == 1.0 and m["clean"] == 1.0
    assert not all(tok.is_canonical([tok.BOS] + s) for s in seqs)  # the order is really free
    face = [0, 0, 0, 5, 0, 0, 0, 5, 0]
    rolled = face[3:] + face[:3]  # the same face started at another corner
    assert follows_grammar(rolled + [tok.EOS], ordered=False) and not follows_grammar(rolled + [tok.EOS])
    assert not follows_grammar(face + rolled + [tok.EOS], ordered=False)  # the same vertex set twice
    assert not follows_grammar([0, 0, 0, 1, 0, 0, 2, 0, 0, tok.EOS], ordered=False)  # collinear


def test_budget_and_face_limit_hold():
    for budget in (10, 19, 25):  # at most (budget - 1) // 9 faces fit
        c = MeshXLConstraint(1, 50, budget)
        out: list[list[int]] = [[]]
        for step in range(budget):
            ok = c(step, out)[0]
            nxt = [t for t in range(tok.LEVELS) if ok[t]]  # always a coordinate when one is allowed
            out[0].append(nxt[len(nxt) // 2] if nxt else tok.EOS)
            if out[0][-1] == tok.EOS:
                break
        assert out[0][-1] == tok.EOS and (len(out[0]) - 1) // 9 == (budget - 1) // 9
    with pytest.raises(ValueError):
        MeshXLConstraint(1, 1, 9)


def test_mesh_metrics_count_what_they_say():
    box = trimesh.creation.box()
    flipped = trimesh.Trimesh(box.vertices, np.vstack([box.faces, box.faces[:1, ::-1]]), process=False)
    flat = trimesh.Trimesh(np.vstack([box.vertices, [[0.0, 0.0, 0.0]]]),
                           np.vstack([box.faces, [[0, 8, 7]]]), process=False)  # (0, centre, opposite corner): a line
    soup = trimesh.Trimesh(box.vertices[box.faces].reshape(-1, 3), np.arange(36).reshape(-1, 3), process=False)
    m = mesh_metrics([box, flipped, flat, soup, None], [True, True, False, True, False])
    assert m == {"n": 5, "parse": 0.6, "watertight": 0.2, "clean": 0.4, "faces": round((12 + 13 + 13 + 12) / 5, 2)}
    assert mesh_metrics([], []) == {"n": 0, "parse": 0.0, "watertight": 0.0, "clean": 0.0, "faces": 0.0}
