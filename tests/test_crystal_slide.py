"""A CrystaLLM CIF longer than the model's context goes on as CrystaLLM's sampler does: each
step past ``block_size`` reads the last ``block_size`` tokens at positions 0.. (nanoGPT's crop,
crystallm/_model.py ``GPT.generate``), up to ``max_new_tokens``. Checked token for token against
that loop written out over a reference nanoGPT forward, and against token ids recorded once from
lantunes/CrystaLLM's own ``GPT.generate`` (tests/fixtures/crystal/README.md)."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_crystal_convert import (
    random_nanogpt_state,
    reference_forward,
    save_checkpoint,
)

from argen.engine.sampling.processors import SamplingConfig, sample

pytest.importorskip("pymatgen")

BLOCK = 24
FIXTURE = Path(__file__).parent / "fixtures" / "crystal" / "slide_greedy.json"


def reference_generate(state, ids, max_new_tokens, pick, block=BLOCK, nl=None):
    """CrystaLLM's loop: crop to the last ``block`` tokens, forward, pick, stop at two newlines."""
    idx = torch.tensor([ids])
    prev = None
    for _ in range(max_new_tokens):
        cond = idx if idx.size(1) <= block else idx[:, -block:]
        logits = reference_forward(state, cond, 2, 2)[:, -1, :]  # positions 0..len(cond)-1
        nxt = pick(logits)
        idx = torch.cat([idx, nxt.view(1, 1)], dim=1)
        if prev is not None and prev == nl and int(nxt) == nl:
            break
        prev = int(nxt)
    return idx[0, len(ids):].tolist()


@pytest.fixture(scope="module")
def fixture_model(tmp_path_factory):
    from argen.modalities.crystal.pipeline import CrystalPipeline

    state = random_nanogpt_state(block_size=BLOCK, seed=3)
    ckpt = save_checkpoint(tmp_path_factory.mktemp("slide") / "ckpt.pt", state, block_size=BLOCK)
    return state, CrystalPipeline.from_pretrained(str(ckpt))


def test_greedy_cif_past_the_context_equals_crystallm(fixture_model):
    state, pipe = fixture_model
    prompt = "data_Ba1Ti1O3\n"
    ids = pipe.tokenizer.encode(prompt)
    want = reference_generate(state, ids, 90, lambda lg: lg.argmax(-1), nl=pipe.tokenizer.newline_id)
    assert len(ids) + len(want) > 3 * BLOCK  # the window slid many times
    got = pipe.sample_ids([prompt], [0], SamplingConfig(temperature=0), max_new_tokens=90)[0]
    assert got == want
    text = pipe.sample_texts(prompt, [0], SamplingConfig(temperature=0), max_new_tokens=90)[0]
    assert text == prompt + pipe.tokenizer.decode(want)
    recorded = json.loads(FIXTURE.read_text())
    assert recorded["prompt"] == prompt and recorded["new_ids"] == want  # CrystaLLM's own GPT.generate
    # without the slide, generation stops at the context
    short = pipe.sample_ids([prompt], [0], SamplingConfig(temperature=0), max_new_tokens=None)[0]
    assert short == want[: BLOCK - len(ids)]


def test_sampled_rows_slide_independently_in_a_batch(fixture_model):
    """Top-k sampling past the context, two prompts in one batch, each row equal to the loop
    above fed with the same per-row noise (argen's sampler draws from a generator per row)."""
    state, pipe = fixture_model
    sampling = SamplingConfig(temperature=0.9, top_k=10)
    prompts, seeds = ["data_Ba1Ti1O3\n", "data_Sr2Ti2O6\n"], [5, 6]
    got = pipe.sample_ids(prompts, seeds, sampling, max_new_tokens=70)
    for prompt, seed, new in zip(prompts, seeds, got):
        ids = pipe.tokenizer.encode(prompt)
        gen = torch.Generator().manual_seed(seed)

        def pick(logits, gen=gen):
            logits = logits / sampling.temperature
            v, _ = torch.topk(logits, sampling.top_k)
            logits = logits.masked_fill(logits < v[:, [-1]], float("-inf"))
            return sample(F.softmax(logits, dim=-1), [gen])

        want = reference_generate(state, ids, 70, pick, nl=pipe.tokenizer.newline_id)
        assert len(ids) + len(want) > BLOCK
        assert new == want
