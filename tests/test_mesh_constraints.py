"""The mesh grammar constraint: real sequences pass it, random logits under it always give a
valid sequence, and `generate` applies it (its one optional hook)."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.rules import token_rules
from argen.lab.data import shapes3d
from argen.modalities.mesh import tokenizer as mt
from argen.modalities.mesh.constraints import MeshConstraint, RowState, is_valid, max_tokens
from tests.conftest import tiny_model

VOCAB = mt.EOS + 1


@pytest.mark.parametrize("adjacent", [False, True])
def test_dataset_sequences_follow_the_grammar(adjacent):
    for s in shapes3d.generate(0, "val", 25):
        tokens = mt.tokenize(s.mesh, adjacent)
        assert is_valid(tokens, adjacent, max_faces=shapes3d.MAX_FACES)


def test_invalid_sequences_are_rejected():
    face = [0, 0, 0, 0, 0, 5, 0, 5, 0]  # (z, y, x) of three increasing vertices
    assert is_valid(face + [mt.EOS], adjacent=False)
    assert not is_valid(face[:8] + [mt.EOS], adjacent=False)  # a coordinate where EOS came
    assert not is_valid(face[:3] + face[:3] + face[6:] + [mt.EOS], adjacent=False)  # repeats a vertex
    assert not is_valid(face[3:6] + face[:3] + face[6:] + [mt.EOS], adjacent=False)  # breaks the sort
    assert not is_valid(face + [mt.SEP] + face + [mt.EOS], adjacent=False)  # repeats a face
    assert not is_valid([mt.EOS], adjacent=False)  # no face
    assert not is_valid(face + [mt.SEP, mt.EOS], adjacent=False)  # SEP must start a face
    assert not is_valid(face + [0, 0, 0, mt.EOS], adjacent=True)  # re-uses a vertex of its edge
    assert is_valid(face + [0, 5, 5, mt.EOS], adjacent=True)
    assert not is_valid(face + [0, 1, 4, mt.EOS], adjacent=True)  # collinear with the last two
    assert not is_valid(face + [mt.SEP] + face + [mt.EOS], adjacent=True)


def _walk(seed: int, adjacent: bool, max_faces: int, budget: int, scale: float, top: float = 0.0) -> list[int]:
    """Sample under the constraint from random logits (sometimes very peaked; ``top`` pushes
    coordinates to the grid's last rows, where few valid faces remain)."""
    gen = torch.Generator().manual_seed(seed)
    c = MeshConstraint(1, adjacent, max_faces, VOCAB, budget)
    out: list[list[int]] = [[]]
    for step in range(budget):
        logits = torch.randn(VOCAB, generator=gen) * scale
        logits[mt.EOS] -= scale  # favour long sequences
        logits[mt.LEVELS - 4:mt.LEVELS] += top
        logits = logits.masked_fill(~c(step, out)[0], float("-inf"))
        out[0].append(int(torch.multinomial(logits.softmax(-1), 1, generator=gen)))
        if out[0][-1] == mt.EOS:
            break
    return out[0]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), adjacent=st.booleans(), max_faces=st.integers(1, 12),
       extra=st.integers(0, 60), scale=st.sampled_from([0.1, 1.0, 30.0]), top=st.sampled_from([0.0, 4.0, 50.0, 200.0]))
def test_constrained_random_logits_always_give_a_valid_mesh(seed, adjacent, max_faces, extra, scale, top):
    budget = 10 + extra
    tokens = _walk(seed, adjacent, max_faces, budget, scale, top)
    assert tokens[-1] == mt.EOS and len(tokens) <= budget
    assert is_valid(tokens, adjacent, max_faces, budget=budget)
    faces = mt.parse_faces(tokens, adjacent)
    assert 1 <= len(faces) <= max_faces
    mesh = mt.detokenize(tokens, adjacent)
    assert len(mesh.faces) == len(faces)  # nothing degenerate or repeated had to be dropped


def test_every_row_always_has_an_allowed_token():
    row = RowState(adjacent=False, max_faces=3, vocab=VOCAB)
    # the largest possible first vertex leaves no room for two larger ones: masked
    z = row.allowed()
    assert z[: mt.LEVELS].all()
    for t in (127, 127):
        row.feed(t)
    assert not row.allowed()[127]  # (127, 127, 127) would be the largest vertex


def test_generate_applies_the_allowed_hook():
    model = tiny_model(vocab=20, sharp=30.0)
    seen = []

    def allowed(step, outputs):
        seen.append([list(o) for o in outputs])
        mask = torch.zeros(2, 20, dtype=torch.bool)
        mask[:, [3, 7]] = True
        mask[1, 3] = False
        return mask

    out = generate(model, [[1, 2], [4]], 6, SamplingConfig(temperature=1.0), seed=0, rules=token_rules(allowed=allowed))
    assert all(t in (3, 7) for t in out[0]) and set(out[1]) == {7}
    assert seen[0] == [[], []] and seen[-1] == [o[:-1] for o in out]  # called before each step
    greedy = generate(model, [[1, 2]], 4, SamplingConfig(temperature=0.0),
                      rules=token_rules(allowed=lambda s, o: torch.tensor([[i == 5 for i in range(20)]])))
    assert greedy == [[5, 5, 5, 5]]


def test_max_tokens_covers_the_worst_case():
    assert max_tokens(400) == 4001
    tokens = _walk(0, False, 3, max_tokens(3), 0.1)
    assert len(mt.parse_faces(tokens, False)) <= 3 and np.all(np.array(tokens[:-1]) != mt.EOS)
