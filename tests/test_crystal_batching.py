"""The crystal sampler's batching: ``generate(compact=True)`` (finished rows leave the batch and
the KV cache) gives every row exactly what it gets without compaction, and a batch of mixed
prompts gives each row what it gets alone."""

import pytest
import torch
from conftest import tiny_model

from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig


@pytest.mark.parametrize("pos_emb", ["rope", "learned"])
def test_compaction_changes_no_row(pos_emb):
    model = tiny_model(pos_emb=pos_emb)
    prompts = [[1, 2, 3], [4], [5, 6, 7, 8, 9], [10, 11], [3, 3], [7]] * 3
    ends = [2 + 5 * (i % 7) for i in range(len(prompts))]  # rows stop at very different lengths
    seen = {True: [], False: []}

    def run(compact):
        gens = [torch.Generator().manual_seed(100 + i) for i in range(len(prompts))]

        def stop(r, new):
            return len(new) >= ends[r]

        return generate(model, prompts, 40, SamplingConfig(temperature=1.0, top_k=20), generators=gens, stop=stop,
                        compact=compact, on_token=lambda t: seen[compact].append(t.tolist()))

    a, b = run(False), run(True)
    assert a == b and [len(x) for x in a] == ends
    assert seen[True] == seen[False]  # callers see every row, -1 once it ended


def test_a_row_in_a_mixed_batch_equals_the_row_alone():
    pytest.importorskip("pymatgen")
    from argen.modalities.crystal.pipeline import CrystalPipeline

    torch.manual_seed(0)
    pipe = CrystalPipeline(tiny_model(vocab=371, pos_emb="learned", norm="layernorm", max_seq_len=60, sharp=3.0))
    # nine prompts of 6 tokens and one of 11: the long row reaches the 60-token context 5 steps
    # before the others and stays in the batch (1 of 10 is under the eighth that compacts)
    prompts = ["data_Na1Cl1\n"] * 9 + ["data_Ba1Ti1O3Na12\n"]
    seeds = list(range(10))
    sampling = SamplingConfig(temperature=0.9, top_k=10)
    together = pipe.sample_ids(prompts, seeds, sampling, max_new_tokens=None, batch=10)
    lengths = {len(pipe.tokenizer.encode(p)) + len(t) for p, t in zip(prompts, together)}
    assert lengths == {60}  # every row ran to the context
    alone = [pipe.sample_ids([p], [s], sampling, max_new_tokens=None)[0] for p, s in zip(prompts, seeds)]
    assert together == alone and together[0] != together[1]
