"""The fused Triton sampling kernel against the eager reference sampler, on CPU through Triton's
interpreter (``TRITON_INTERPRET=1``, set before the kernel module is imported): the same tokens
when greedy, the same distribution by a chi-square test when sampling."""

import os

import pytest
import torch

# Triton reads this when it decorates a kernel, its own library's helpers included: before any
# import of triton in this process (a conftest or an earlier test module importing it would
# leave them compiled for GPUs; the check below then says so instead of failing obscurely)
_BEFORE = os.environ.get("TRITON_INTERPRET")
os.environ["TRITON_INTERPRET"] = "1"
triton = pytest.importorskip("triton")
if not type(triton.language.zeros).__name__ == "InterpretedFunction":
    pytest.skip("triton was imported before TRITON_INTERPRET=1 was set; run this file alone", allow_module_level=True)

from argen.engine.kernels.fused_sampling import fused_sample, step_seeds, use_fused  # noqa: E402
from argen.engine.sampling.processors import SamplingConfig, apply_cfg, probs_from_logits  # noqa: E402
from argen.engine.sampling.rules import Guidance, Step, token_rules  # noqa: E402
from argen.engine.sampling.step import choose_tokens  # noqa: E402

V = 40


@pytest.fixture(autouse=True, scope="module")
def _interpreter():
    """The interpreter for this module's kernels; the setting is put back for later modules."""
    os.environ["TRITON_INTERPRET"] = "1"
    yield
    if _BEFORE is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = _BEFORE


def _logits(rows: int, vocab: int = V, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * 2.0


def _chi2_pvalue(tokens: torch.Tensor, probs: torch.Tensor) -> float:
    """p-value of Pearson's chi-square test of ``tokens`` against ``probs`` (V,); tokens of
    probability 0 must never occur."""
    n = tokens.numel()
    counts = torch.bincount(tokens.flatten(), minlength=probs.numel()).double()
    assert counts[probs == 0].sum() == 0, "a token outside the filtered support was drawn"
    keep = probs > 0
    expected = probs.double()[keep] * n
    stat = ((counts[keep] - expected) ** 2 / expected).sum()
    dof = int(keep.sum()) - 1
    if dof == 0:
        return 1.0
    return float(torch.special.gammaincc(torch.tensor(dof / 2.0, dtype=torch.float64), stat / 2.0))


@pytest.mark.parametrize("vocab", [V, 4100])  # 4100: more than one block of lanes per row
def test_greedy_equals_argmax(vocab):
    logits = _logits(6, vocab)
    logits[2, 7] = logits[2, 9] = logits[2].max() + 1  # a tie: the first index, as torch.argmax
    assert torch.equal(fused_sample(logits, temperature=0.0), logits.argmax(-1))
    uncond = _logits(6, vocab, seed=1)
    guided = apply_cfg(logits, uncond, 3.0)
    assert torch.equal(fused_sample(logits, uncond, 3.0, temperature=0.0), guided.argmax(-1))


@pytest.mark.parametrize("settings", [
    dict(temperature=1.0),
    dict(temperature=0.7, top_k=6),
    dict(temperature=1.3, top_p=0.8),
    dict(temperature=1.0, min_p=0.08),
    dict(temperature=0.9, top_k=12, top_p=0.75, min_p=0.02),
])
def test_sampled_distribution_matches_reference(settings):
    n = 3000
    row = _logits(1)
    probs = probs_from_logits(row, SamplingConfig(**settings))[0]
    tokens = fused_sample(row.expand(n, V), seeds=torch.arange(n), **settings)
    assert tokens.shape == (n,)
    assert _chi2_pvalue(tokens, probs) > 1e-3
    # the filters bite (none outside the support is drawn: checked above); every likely token is drawn
    if "top_k" in settings or "top_p" in settings or "min_p" in settings:
        assert int((probs > 0).sum()) < V
    assert set(torch.nonzero(probs * n >= 10).flatten().tolist()) <= set(tokens.unique().tolist())


def test_guided_distribution_and_masked_tokens():
    n = 3000
    cond, uncond = _logits(1), _logits(1, seed=5)
    cond[0, :10] = float("-inf")  # guidance with a weight above 1 keeps them at -inf: never drawn
    guided = apply_cfg(cond[:, 10:], uncond[:, 10:], 2.5)
    probs = torch.cat([torch.zeros(10), probs_from_logits(guided, SamplingConfig(top_p=0.9))[0]])
    tokens = fused_sample(cond.expand(n, V), uncond.expand(n, V), 2.5, top_p=0.9, seeds=torch.arange(n))
    assert _chi2_pvalue(tokens, probs) > 1e-3


def test_rows_draw_independently_of_the_batch():
    logits = _logits(5)
    seeds = step_seeds(torch.arange(100, 105), 3)
    batch = fused_sample(logits, seeds=seeds, top_k=8)
    alone = torch.stack([fused_sample(logits[i:i + 1], seeds=seeds[i:i + 1], top_k=8)[0] for i in range(5)])
    assert torch.equal(batch, alone)
    assert not torch.equal(step_seeds(torch.arange(5), 0), step_seeds(torch.arange(5), 1))
    with pytest.raises(ValueError, match="seed"):
        fused_sample(logits)  # sampling needs seeds


def _step(rows: int, sampling: SamplingConfig, index: int = 0) -> Step:
    return Step(index, 0.5, list(range(rows)), [[] for _ in range(rows)], sampling)


@pytest.mark.parametrize("schedule", ["constant", "var"])
def test_choose_tokens_fused_greedy_equals_eager(schedule):
    """The loop's step with the kernel folding guidance in (rows b.. are the twins; a vocabulary
    limit first) chooses what the eager step chooses."""
    b = 4
    logits = _logits(2 * b, 60, seed=3)
    sampling = SamplingConfig(temperature=0.0, cfg_scale=2.0, cfg_schedule=schedule)
    rules = token_rules(vocab_limit=V, uncond_prompts=[[0]] * b)
    assert isinstance(rules[-1], Guidance)
    eager = choose_tokens(logits, _step(b, sampling), rules)
    fused = choose_tokens(logits, _step(b, sampling), rules, fused=True)
    assert torch.equal(eager, fused)
    assert int(fused.max()) < V


def test_choose_tokens_fused_grammar_after_guidance():
    """A grammar after guidance masks the combined logits (guidance then runs before the kernel):
    the disallowed ids are never drawn and the rest follow the eager distribution."""
    n = 2000
    allowed = torch.zeros(n, V, dtype=torch.bool)
    allowed[:, 5:25] = True
    sampling = SamplingConfig(temperature=1.0, cfg_scale=1.5)
    row, twin = _logits(1, seed=7), _logits(1, seed=8)
    logits = torch.cat([row.expand(n, V), twin.expand(n, V)])
    rules = token_rules(uncond_prompts=[[0]] * n, allowed=lambda step, outputs: allowed)
    gens = [torch.Generator().manual_seed(i) for i in range(n)]
    tokens = choose_tokens(logits, _step(n, sampling, index=2), rules, gens, fused=True)
    expected = probs_from_logits(apply_cfg(row, twin, 1.5).masked_fill(~allowed[:1], float("-inf")), sampling)[0]
    assert _chi2_pvalue(tokens, expected) > 1e-3


def test_cpu_keeps_the_pytorch_path():
    """The loops ask for the kernel only on CUDA with --compile and no repetition penalty."""
    assert not use_fused(SamplingConfig(), "cpu", compile=True)
    assert not use_fused(SamplingConfig(), "cpu", compile=False)
    assert not use_fused(SamplingConfig(repetition_penalty=1.2), "cuda", compile=True)
