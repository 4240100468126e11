"""Logits processors and the sampler."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from argen.engine.sampling.processors import (
    SamplingConfig,
    apply_cfg,
    apply_min_p,
    apply_repetition_penalty,
    apply_top_k,
    apply_top_p,
    guidance_scale,
    probs_from_logits,
    sample,
)
from argen.errors import UsageError

logit_rows = st.lists(st.floats(-20, 20, allow_nan=False, width=32), min_size=2, max_size=40)


def test_top_k_keeps_exactly_k():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    out = apply_top_k(logits, 2)
    assert torch.isfinite(out).nonzero()[:, 1].tolist() == [1, 3]


@settings(max_examples=200, deadline=None)
@given(logit_rows, st.floats(0.01, 0.99))
def test_top_p_keeps_the_smallest_set_reaching_p(row, p):
    logits = torch.tensor([row])
    kept = torch.isfinite(apply_top_p(logits, p))[0]
    probs = logits.softmax(-1)[0]
    mass = probs[kept].sum().item()
    assert mass >= p - 1e-5
    # every kept token is at least as likely as every dropped one
    if (~kept).any():
        assert probs[kept].min() >= probs[~kept].max() - 1e-7
    # dropping the least likely kept token would fall below p (minimality), unless ties
    least = probs[kept].min().item()
    assert mass - least < p + 1e-5 or (probs[kept] == least).sum() > 1


def test_min_p_threshold_is_relative_to_top():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(apply_min_p(logits, 0.2))[0].tolist()
    assert kept == [True, True, True, False]  # 0.05 < 0.2 * 0.5


def test_repetition_penalty_pushes_seen_tokens_down_either_sign():
    logits = torch.tensor([[2.0, -2.0, 2.0, -2.0]])
    out = apply_repetition_penalty(logits, torch.tensor([[0, 1, -1]]), 2.0)
    assert out.tolist() == [[1.0, -4.0, 2.0, -2.0]]


def test_cfg_and_schedule():
    cond, uncond = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    assert apply_cfg(cond, uncond, 3.0).tolist() == [[4.0, -2.0]]
    assert guidance_scale(3.0, "constant", 0.2) == 3.0
    assert guidance_scale(3.0, "linear", 0.0) == 1.0 and guidance_scale(3.0, "linear", 1.0) == 3.0


def test_greedy_is_one_hot_argmax():
    probs = probs_from_logits(torch.tensor([[0.1, 3.0, 2.0]]), SamplingConfig(temperature=0))
    assert probs.tolist() == [[0.0, 1.0, 0.0]]


def test_sampler_reproduces_the_distribution():
    target = torch.tensor([0.5, 0.25, 0.15, 0.1])
    gen = torch.Generator().manual_seed(0)
    n = 20000
    draws = torch.stack([sample(target[None].expand(200, 4), [gen] * 200) for _ in range(n // 200)]).flatten()
    counts = torch.bincount(draws, minlength=4).float()
    chi2 = ((counts - n * target) ** 2 / (n * target)).sum().item()
    assert chi2 < 16.27  # 3 degrees of freedom, p = 0.001


def test_rows_sample_independently_of_the_batch():
    probs = torch.softmax(torch.randn(3, 30), -1)
    gens = [torch.Generator().manual_seed(s) for s in (7, 8, 9)]
    together = sample(probs, gens)
    alone = [sample(probs[i : i + 1], [torch.Generator().manual_seed(7 + i)]).item() for i in range(3)]
    assert together.tolist() == alone


@pytest.mark.parametrize("kw", [{"temperature": -1}, {"top_p": 2}, {"top_p": 0}, {"top_k": 0}, {"min_p": 1.0},
                                {"repetition_penalty": 0}, {"cfg_scale": -1}])
def test_out_of_range_settings_are_usage_errors(kw):
    with pytest.raises(UsageError):
        SamplingConfig(**kw)


def test_temperature_sharpens():
    logits = torch.tensor([[1.0, 2.0]])
    hot = probs_from_logits(logits, SamplingConfig(temperature=2.0))[0, 1].item()
    cold = probs_from_logits(logits, SamplingConfig(temperature=0.5))[0, 1].item()
    assert math.isclose(hot, 1 / (1 + math.exp(-0.5)), rel_tol=1e-5) and cold > hot
