"""shapes3d meshes and their tokenisation: determinism, round trips up to quantisation, the
adjacent order's saving, and a detokeniser that accepts anything."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from argen.errors import UsageError
from argen.lab.data import shapes3d
from argen.modalities.mesh import tokenizer as mt

HALF_STEP = 0.5 / mt.LEVELS


@pytest.fixture(scope="module")
def samples():
    # every object with every modifier, plus random draws from both splits
    fixed = [shapes3d.sample(0, k, "train", obj=o, modifier=m)
             for k, (o, m) in enumerate((o, m) for o in shapes3d.OBJECTS for m in (None, *shapes3d.MODIFIERS))]
    return fixed + shapes3d.generate(0, "train", 30) + shapes3d.generate(0, "val", 30)


def test_dataset_is_deterministic_and_small(samples):
    a, b = shapes3d.sample(3, 17, "val"), shapes3d.sample(3, 17, "val")
    assert a.caption == b.caption and np.array_equal(a.mesh.vertices, b.mesh.vertices)
    train = [shapes3d.sample(0, k, "train") for k in range(20)]
    val = [shapes3d.sample(0, k, "val") for k in range(20)]
    assert [t.caption for t in train] != [v.caption for v in val]  # the splits draw their own streams
    for s in samples:
        assert 0 < len(s.mesh.faces) <= shapes3d.MAX_FACES
        assert shapes3d.parse_caption(s.caption) == (s.modifier, s.object)
        assert s.mesh.is_watertight  # every part is a closed mesh


def test_caption_grammar_errors_list_the_words():
    assert shapes3d.parse_caption("a Tall LAMP") == ("tall", "lamp")
    with pytest.raises(UsageError) as e:
        shapes3d.parse_caption("a purple dragon")
    assert "dragon" in str(e.value) and "lamp" in e.value.hint and "tall" in e.value.hint
    with pytest.raises(UsageError):
        shapes3d.parse_caption("a lamp table")


@pytest.mark.parametrize("adjacent", [False, True])
def test_round_trip_is_exact_up_to_quantisation(samples, adjacent):
    for s in samples:
        verts, faces = mt.canonical(s.mesh)
        tokens = mt.tokenize(s.mesh, adjacent)
        assert tokens[-1] == mt.EOS and mt.EOS not in tokens[:-1]
        mesh = mt.detokenize(tokens, adjacent)
        assert len(mesh.faces) == len(faces)
        # every original vertex lies within half a quantisation step of a decoded one, and back
        original = mt.normalize(s.mesh.vertices)
        d, _ = cKDTree(mesh.vertices).query(original, p=np.inf)
        assert d.max() <= HALF_STEP + 1e-9
        d, _ = cKDTree(original).query(mesh.vertices, p=np.inf)
        assert d.max() <= HALF_STEP + 1e-9
        # same faces: compare as sets of quantised vertex triples
        got = {tuple(sorted(map(tuple, mt.quantize(mesh.vertices[f])))) for f in mesh.faces}
        want = {tuple(sorted(map(tuple, verts[f]))) for f in faces}
        assert got == want


def test_canonical_order_sorts_vertices_zyx_and_faces(samples):
    verts, faces = mt.canonical(samples[40].mesh)
    keys = mt.vertex_key(verts)
    assert (np.diff(keys) > 0).all()  # sorted by (z, y, x), duplicates merged
    assert (np.diff(faces, axis=1) > 0).all()  # ascending inside each face
    assert [tuple(f) for f in faces] == sorted(tuple(f) for f in faces)


def test_adjacent_tokenisation_is_shorter(samples):
    plain = sum(len(mt.tokenize(s.mesh, False)) for s in samples)
    adjacent = sum(len(mt.tokenize(s.mesh, True)) for s in samples)
    faces = sum(len(mt.canonical(s.mesh)[1]) for s in samples)
    assert plain == 10 * faces  # 9 coordinates and a separator (or EOS) per face
    assert adjacent < 0.6 * plain


@pytest.mark.parametrize("adjacent", [False, True])
def test_detokenize_accepts_any_tokens(adjacent):
    rng = np.random.default_rng(0)
    for _ in range(50):
        tokens = rng.integers(0, mt.EOS + 5, size=int(rng.integers(0, 80))).tolist()
        mesh = mt.detokenize(tokens, adjacent)
        assert mesh.faces.shape[1:] == (3,) and mesh.vertices.shape[1:] == (3,)
        if len(mesh.faces):
            assert (mesh.area_faces > 0).all()
            assert len(np.unique(np.sort(mesh.faces, 1), axis=0)) == len(mesh.faces)
            assert np.abs(mesh.vertices).max() <= 0.5


def test_layout_ids_and_caption_errors():
    lay = mt.MeshLayout(words=list(shapes3d.VOCABULARY))
    ids = lay.caption_ids("a tall lamp")
    assert len(ids) == lay.prefix_len and min(ids) > mt.EOS and max(ids) < lay.pad
    assert lay.null_ids() == [lay.null] * 3 and lay.vocab_size == lay.null + 1
    with pytest.raises(UsageError):
        lay.caption_ids("a blue lamp")
    assert mt.MeshLayout.from_dict(lay.to_dict()) == lay
