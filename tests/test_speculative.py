"""Speculative decoding: exact target distribution (chi-square), greedy equality."""

import pytest
import torch
from conftest import tiny_model

from argen.engine.sampling import speculative
from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.speculative import LookupDrafter, ModelDrafter, speculative_generate
from argen.engine.sampling.window import ContextWindow

V = 4
PROMPT = [1, 2, 3, 1, 2]
CHI2_CRIT_15 = 37.70  # chi-square, 15 degrees of freedom, p = 0.001


def exact_two_token_distribution(m, prompt):
    """P(x1, x2 | prompt) under the model, (V, V)."""
    with torch.no_grad():
        p1 = m(torch.tensor([prompt]))[0, -1].softmax(-1)
        seqs = torch.tensor([prompt + [a] for a in range(V)])
        p2 = m(seqs)[:, -1].softmax(-1)
    return p1[:, None] * p2


def chi2_of(drafter_factory, n=2000, k=2):
    target = tiny_model(seed=0, vocab=V, sharp=6, n_layer=1)
    joint = exact_two_token_distribution(target, PROMPT)
    counts = torch.zeros(V, V)
    gen = torch.Generator().manual_seed(0)
    sampling = SamplingConfig(temperature=1.0)
    for _ in range(n):
        out, _ = speculative_generate(target, PROMPT, 2, drafter_factory(sampling), sampling, k=k, generator=gen)
        counts[out[0], out[1]] += 1
    expected = joint * n
    assert expected.min() > 5, "toy model too peaked for a chi-square test"
    return ((counts - expected) ** 2 / expected).sum().item()


def draft_model_factory():
    draft = tiny_model(seed=1, vocab=V, sharp=6, n_layer=1)
    return lambda s: ModelDrafter(draft, s, 32)


def test_draft_model_sampling_reproduces_target_distribution():
    assert chi2_of(draft_model_factory()) < CHI2_CRIT_15


def test_lookup_sampling_reproduces_target_distribution():
    assert chi2_of(lambda s: LookupDrafter(2)) < CHI2_CRIT_15


def test_the_chi_square_test_catches_a_wrong_residual(monkeypatch):
    # resampling from p instead of norm(max(0, p - q)) after a rejection biases the output
    monkeypatch.setattr(speculative, "_residual", lambda p, q, x: p)
    assert chi2_of(draft_model_factory()) > CHI2_CRIT_15


@pytest.mark.parametrize("drafter", ["model", "lookup"])
def test_greedy_speculative_equals_greedy(drafter):
    target = tiny_model(seed=0, vocab=20, sharp=30)
    greedy = SamplingConfig(temperature=0)
    prompt = [1, 2, 3, 4, 1, 2, 3]
    d = ModelDrafter(tiny_model(seed=5, vocab=20, sharp=30), greedy, 128) if drafter == "model" else LookupDrafter(3)
    out, stats = speculative_generate(target, prompt, 40, d, greedy, k=4)
    assert out == generate(target, [prompt], 40, greedy)[0]
    assert stats.proposed > 0


def test_self_drafting_accepts_everything():
    target = tiny_model(seed=0, vocab=20, sharp=30)
    greedy = SamplingConfig(temperature=0)
    out, stats = speculative_generate(target, [1, 2, 3], 30, ModelDrafter(target, greedy, 64), greedy, k=4)
    assert stats.acceptance_rate == 1.0 and len(out) == 30
    assert stats.target_calls == 6  # 5 tokens per call: 4 drafts and the bonus token


def test_lookup_drafter_proposes_what_followed_the_last_ngram():
    d = LookupDrafter(2)
    assert d.propose([5, 6, 7, 8, 9, 5, 6], 3, None)[0] == [7, 8, 9]
    assert d.propose([1, 2, 3], 3, None)[0] == []


@pytest.mark.parametrize("drafter", ["model", "lookup"])
def test_speculative_slides_past_the_context_like_plain_decoding(drafter):
    target = tiny_model(seed=0, vocab=20, sharp=30, max_seq_len=32)
    greedy = SamplingConfig(temperature=0)
    prompt = [1, 2, 3, 4, 1, 2, 3]
    d = ModelDrafter(tiny_model(seed=5, vocab=20, sharp=30), greedy, 32) if drafter == "model" else LookupDrafter(3)
    out, _ = speculative_generate(target, prompt, 80, d, greedy, k=4, window=32)
    plain = generate(target, [prompt], 80, greedy, window=ContextWindow(32))[0]
    assert len(out) == 80
    # identical until the window first fills; afterwards the two evict at different moments
    assert out[: 32 - len(prompt) - 5] == plain[: 32 - len(prompt) - 5]


def test_prompt_filling_the_window_still_drafts():
    target = tiny_model(seed=0, vocab=20, sharp=30, max_seq_len=32)
    greedy = SamplingConfig(temperature=0)
    prompt = [i % 20 for i in range(30)]
    out, stats = speculative_generate(target, prompt, 40, ModelDrafter(tiny_model(seed=5, vocab=20, sharp=30), greedy, 32),
                                      greedy, k=4, window=32)
    assert len(out) == 40 and stats.proposed > 0
    assert out[0] == generate(target, [prompt], 1, greedy, window=ContextWindow(32))[0][0]
