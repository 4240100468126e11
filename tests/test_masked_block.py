"""The masked block-diffusion loop: cached blocks equal recomputed ones, rows are independent of the
batch, the step budget and the thresholds hold, the first-hitting sampler draws from the model."""

import pytest
import torch
from conftest import tiny_model

from argen.engine.sampling.masked_block import BlockSettings, generate_blocks
from argen.engine.sampling.processors import SamplingConfig, make_generators
from argen.errors import UsageError
from argen.modalities.text.block_diffusion.model import BlockDiffusionModel

V, MASK = 40, 39


def bd_model(block_size: int = 4, sharp: float = 30.0, seed: int = 0) -> BlockDiffusionModel:
    net = tiny_model(seed=seed, vocab=V, sharp=sharp, block_size=block_size, max_seq_len=64)
    return BlockDiffusionModel(net=net, family="argen-bd3", mask_id=MASK, block_size=block_size, token_shift=False,
                               max_len=64)


def run(model, prompts, n, settings, sampling, seed=0, use_cache=True, on_block=None):
    gens = make_generators(seed, len(prompts))
    return generate_blocks(model, prompts, n, settings, sampling, generators=gens, use_cache=use_cache,
                           on_block=on_block)


CASES = [
    (BlockSettings(4, threshold=1.0), SamplingConfig(temperature=0.0)),
    (BlockSettings(4, steps=2, threshold=0.8), SamplingConfig(temperature=1.0, top_p=0.9)),
    (BlockSettings(4, sampler="first-hitting"), SamplingConfig(temperature=0.8)),
    (BlockSettings(4, threshold=0.5, sub_block=2), SamplingConfig(temperature=1.0, top_k=5)),
]


@pytest.mark.parametrize("settings, sampling", CASES)
def test_cached_blocks_equal_recomputing_every_block(settings, sampling):
    model = bd_model()
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10]]
    cached = run(model, prompts, 13, settings, sampling)
    assert cached == run(model, prompts, 13, settings, sampling, use_cache=False)
    tokens, passes = cached
    assert [len(t) for t in tokens] == [13, 13, 13] and all(MASK not in t for t in tokens)
    if settings.steps:  # the step budget: at most `steps` passes a block, fewer for one the prompt partly fills
        for p, n in zip(prompts, passes):
            first = max(1, settings.steps * (4 - len(p) % 4) // 4)
            assert n <= first + (-(-(len(p) % 4 + 13) // 4) - 1) * settings.steps


@pytest.mark.parametrize("prompt_len, first_block_passes", [(1, 3), (3, 2), (6, 1), (8, 0)])
def test_a_block_the_prompt_partly_fills_gets_proportionally_fewer_passes(prompt_len, first_block_passes):
    """Blocks of 8, at most 4 passes a block, a threshold no token reaches (so every block takes
    its whole budget): a block with m positions left after the prompt takes max(1, 4 * m // 8)
    passes, not 4, so passes per token never exceed steps / block size."""
    model = bd_model(block_size=8, sharp=2.0)
    settings = BlockSettings(8, steps=4, threshold=1.0)
    prompt = list(range(1, prompt_len + 1))
    new = (8 - prompt_len % 8) % 8 + 8  # the rest of the prompt's block, then a whole block
    tokens, passes = run(model, [prompt], new, settings, SamplingConfig(temperature=1.0))
    assert len(tokens[0]) == new and MASK not in tokens[0]
    assert passes == [first_block_passes + 4]
    assert passes[0] / new <= settings.steps / 8


def test_the_pass_budget_scales_with_the_masked_positions():
    from argen.engine.sampling.masked_block import pass_budget

    s = BlockSettings(8, steps=4)
    assert [pass_budget(s, m) for m in range(1, 9)] == [1, 1, 1, 2, 2, 3, 3, 4]
    assert pass_budget(BlockSettings(8), 5) is None


def test_a_row_gets_the_same_tokens_alone_and_in_a_batch():
    model = bd_model()
    settings, sampling = BlockSettings(4, threshold=0.7), SamplingConfig(temperature=1.0)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8], [9, 9]]
    batch_tokens, batch_passes = run(model, prompts, 10, settings, sampling, seed=5)
    for b, p in enumerate(prompts):
        alone = generate_blocks(model, [p], 10, settings, sampling, generators=make_generators(5 + b, 1))
        assert alone == ([batch_tokens[b]], [batch_passes[b]])


def test_streamed_blocks_add_up_to_the_output():
    model = bd_model()
    seen = []
    tokens, _ = run(model, [[1, 2, 3, 4, 5]], 9, BlockSettings(4, threshold=0.6), SamplingConfig(temperature=0.9),
                    on_block=lambda k, new: seen.append((k, new[0])))
    assert [k for k, _ in seen] == [0, 1, 2]
    assert sum((t for _, t in seen), [])[:9] == tokens[0]
    assert [len(t) for _, t in seen] == [3, 4, 4]  # the prompt's last token opens the first block


def test_lower_thresholds_commit_more_tokens_per_pass():
    model = bd_model(sharp=60.0)
    prompts, sampling = [[1, 2, 3, 4]] * 4, SamplingConfig(temperature=0.0)
    per_token = []
    for threshold in (1.0, 0.9, 0.5, 0.1):
        tokens, passes = run(model, prompts, 16, BlockSettings(4, threshold=threshold), sampling)
        per_token.append(sum(passes) / sum(len(t) for t in tokens))
    assert per_token[0] == 1.0 and per_token[-1] < per_token[0]
    assert per_token == sorted(per_token, reverse=True)


def test_first_hitting_draws_from_the_models_conditional():
    """With blocks of one token, block diffusion is next-token sampling: the first new token's
    frequencies over many seeds follow the model's (temperature-scaled) softmax at the masked
    position after the prompt."""
    model = bd_model(block_size=1, sharp=8.0)
    sampling = SamplingConfig(temperature=0.7)
    prompt = [3, 1, 4]
    with torch.no_grad():
        logits = model.net(torch.tensor([prompt + [MASK]]))[0, -1].double()
    logits[MASK] = float("-inf")
    p = (logits / 0.7).softmax(-1)
    n = 3000
    gens = make_generators(100, n)
    tokens, passes = generate_blocks(model, [prompt] * n, 1, BlockSettings(1, sampler="first-hitting"), sampling,
                                     generators=gens)
    counts = torch.bincount(torch.tensor([t[0] for t in tokens]), minlength=V).double()
    assert passes == [1] * n
    top = p.argsort(descending=True)[:5]
    se = (p[top] * (1 - p[top]) / n).sqrt()
    assert ((counts[top] / n - p[top]).abs() < 4 * se + 1e-3).all()


def test_bad_settings_are_usage_errors():
    model = bd_model()
    with pytest.raises(UsageError, match="trained with blocks of 4"):
        run(model, [[1]], 4, BlockSettings(8), SamplingConfig())
    with pytest.raises(UsageError, match="threshold"):
        BlockSettings(4, threshold=0.0)
    with pytest.raises(UsageError, match="must divide"):
        BlockSettings(4, sub_block=3)
    with pytest.raises(UsageError, match="exceed the model's context"):
        run(model, [[1] * 40], 40, BlockSettings(4), SamplingConfig())
