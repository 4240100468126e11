"""The next-token loop's conditioning pass-through (argen/engine/sampling/conditioning.py): an
encoder-decoder's cross-attention memory and prefix vectors reach every forward pass, cached or
not, and a row's tokens do not depend on the rows beside it."""

import pytest
import torch
from conftest import tiny_model

from argen.engine.sampling.conditioning import Conditioning
from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.window import ContextWindow

GREEDY = SamplingConfig(temperature=0)


def memory_rows(m, lengths, seed=1):
    """Random encoder states of the given lengths, right-padded and masked -> Memory."""
    g = torch.Generator().manual_seed(seed)
    states = [torch.randn(n, 32, generator=g) for n in lengths]
    width = max(lengths)
    padded = torch.zeros(len(states), width, 32)
    mask = torch.zeros(len(states), width, dtype=torch.bool)
    for i, s in enumerate(states):
        padded[i, :len(s)], mask[i, :len(s)] = s, True
    return m.memory(padded, mask), states


def test_memory_rows_are_independent_and_cached_equals_uncached():
    m = tiny_model(cross_attn=True, pos_emb="sinusoidal", sharp=20)
    memory, states = memory_rows(m, [3, 7])
    prompts = [[1, 2, 3], [4, 5]]
    both = generate(m, prompts, 6, GREEDY, condition=Conditioning(memory=memory))
    alone = generate(m, prompts[1:], 6, GREEDY, condition=Conditioning(memory=m.memory(states[1][None])))
    assert both[1] == alone[0]
    assert generate(m, prompts, 6, GREEDY, condition=Conditioning(memory=memory), use_cache=False) == both
    other, _ = memory_rows(m, [3, 7], seed=2)
    x = torch.tensor([[1, 2, 3], [4, 5, 6]])
    with torch.no_grad():  # the memory is read: other states, other logits
        assert (m(x, memory=memory) - m(x, memory=other)).abs().max() > 1e-3


def test_prefix_vectors_come_before_each_rows_prompt():
    m = tiny_model(sharp=20)
    g = torch.Generator().manual_seed(0)
    vecs = torch.randn(2, 4, 32, generator=g)
    pos = torch.tensor([[-1, -1, 0, 1], [0, 1, 2, 3]])  # row 0: a prefix of 2, left-padded
    cond = Conditioning(prefix=(vecs, pos))
    out = generate(m, [[1, 2], [3]], 5, GREEDY, condition=cond)
    alone = generate(m, [[1, 2]], 5, GREEDY, condition=Conditioning(prefix=(vecs[:1, 2:], torch.tensor([[0, 1]]))))
    assert out[0] == alone[0]
    assert generate(m, [[1, 2], [3]], 5, GREEDY, condition=cond, use_cache=False) == out


def test_what_the_loop_cannot_do_with_conditioning_is_refused():
    m = tiny_model(cross_attn=True, pos_emb="sinusoidal")
    memory, _ = memory_rows(m, [3, 4])
    with pytest.raises(ValueError, match="2 rows for a batch of 1"):
        generate(m, [[1]], 2, GREEDY, condition=Conditioning(memory=memory))
    with pytest.raises(ValueError, match="compact"):
        generate(m, [[1], [2]], 2, GREEDY, condition=Conditioning(memory=memory), compact=True)
    prefix = Conditioning(prefix=(torch.zeros(1, 2, 32), torch.tensor([[0, 1]])))
    with pytest.raises(ValueError, match="window"):
        generate(tiny_model(), [[1]], 2, GREEDY, condition=prefix, window=ContextWindow(64))
