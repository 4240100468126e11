"""The graph-mode decode step (a static KV cache written at a slot held in a tensor, the step's
shapes fixed: what --compile captures as a CUDA graph on CUDA) gives the dynamic cache's tokens.
On CPU the step runs eagerly; the capture itself needs a GPU."""

import torch
from conftest import tiny_model

from argen.engine.sampling import next_token
from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.step import decode_one_token, graph_decoder, left_pad, prefill, use_graphs


def test_graph_mode_step_equals_dynamic_step():
    model = tiny_model(max_seq_len=48)
    idx, pos = left_pad([[1, 2, 3, 4, 5], [6, 7]])  # left padding: the static read must mask it
    caches = [model.new_cache(2, capacity=16) for _ in range(2)]
    with torch.no_grad():
        logits = [prefill(model, idx, pos, c) for c in caches]
        step = graph_decoder(compiled=False)
        next_pos = pos[:, -1:] + 1
        for _ in range(6):
            tok = logits[0].argmax(-1, keepdim=True)
            logits = [decode_one_token(model, tok, next_pos, caches[0]), step(model, tok, next_pos, caches[1])]
            torch.testing.assert_close(logits[1], logits[0], atol=1e-5, rtol=1e-5)
            next_pos = next_pos + 1
    assert caches[1].static and caches[1].length == caches[0].length == 5 + 6
    assert torch.equal(caches[1].pos, caches[0].pos)
    for a, b in zip(caches[0].k, caches[1].k):
        torch.testing.assert_close(a[:, :, :11], b[:, :, :11])  # layer 2 on: sums over more (masked) keys


def test_generate_with_the_static_step_gives_the_same_tokens(monkeypatch):
    model = tiny_model(max_seq_len=48, sharp=4.0)
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9]]
    for sampling in (SamplingConfig(temperature=0.0), SamplingConfig(temperature=0.9, top_k=20)):
        dynamic = generate(model, prompts, 12, sampling, seed=3)
        monkeypatch.setattr(next_token, "use_graphs", lambda *a: True)  # the CUDA rule, forced
        monkeypatch.setattr(next_token, "graph_decoder", lambda: graph_decoder(compiled=False))
        static = generate(model, prompts, 12, sampling, seed=3, compile=True)
        monkeypatch.undo()
        assert static == dynamic and len(static[0]) == 12


def test_cpu_and_moving_caches_keep_the_dynamic_step():
    assert not use_graphs("cpu", True, True, False, False)
    assert not use_graphs("cuda", True, True, True, False)  # a sliding window
    assert not use_graphs("cuda", True, True, False, True)  # compaction
    assert use_graphs("cuda", True, True, False, False)
