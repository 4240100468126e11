"""The next-token loop: cached = uncached, batched = one by one, stops, sliding window."""

from conftest import tiny_model

from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.window import ContextWindow

PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11]]
GREEDY = SamplingConfig(temperature=0)
SAMPLED = SamplingConfig(temperature=1.0, top_k=20, top_p=0.95, repetition_penalty=1.2)


def test_cached_equals_uncached_greedy_and_sampled():
    m = tiny_model(sharp=30)
    assert generate(m, PROMPTS, 30, GREEDY) == generate(m, PROMPTS, 30, GREEDY, use_cache=False)
    assert generate(m, PROMPTS, 30, SAMPLED, seed=3) == generate(m, PROMPTS, 30, SAMPLED, seed=3, use_cache=False)


def test_batched_equals_one_by_one():
    m = tiny_model(sharp=30)
    batched = generate(m, PROMPTS, 25, SAMPLED, seed=11)
    single = [generate(m, [p], 25, SAMPLED, seed=11 + i)[0] for i, p in enumerate(PROMPTS)]
    assert batched == single
    assert generate(m, PROMPTS, 25, GREEDY) == [generate(m, [p], 25, GREEDY)[0] for p in PROMPTS]


def test_same_seed_same_output_different_seed_differs():
    m = tiny_model(sharp=10)
    a, b, c = (generate(m, [[1, 2]], 40, SamplingConfig(), seed=s)[0] for s in (5, 5, 6))
    assert a == b and a != c


def test_eos_and_stop_end_rows_independently():
    m = tiny_model(sharp=30)
    free = generate(m, PROMPTS, 20, GREEDY)
    eos = free[0][4]
    out = generate(m, PROMPTS, 20, GREEDY, eos_id=eos)
    assert out[0] == free[0][: free[0].index(eos) + 1]
    stopped = generate(m, PROMPTS, 20, GREEDY, stop=lambda row, toks: row == 1 and len(toks) == 3)
    assert len(stopped[1]) == 3 and stopped[0] == free[0] and stopped[2] == free[2]


def test_on_token_streams_every_token():
    m = tiny_model(sharp=30)
    seen = []
    out = generate(m, [[1, 2, 3]], 12, GREEDY, on_token=lambda t: seen.append(int(t[0])))
    assert seen == out[0]


def test_window_lets_generation_outrun_the_cache():
    m = tiny_model(sharp=30, max_seq_len=32)
    out = generate(m, PROMPTS, 100, SAMPLED, seed=1, window=ContextWindow(32))
    assert [len(o) for o in out] == [100, 100, 100]
    # before the window fills, the sliding path equals the plain one
    assert [o[:25] for o in out] == generate(m, PROMPTS, 25, SAMPLED, seed=1)


def test_compiled_decode_matches_eager():
    m = tiny_model(sharp=30)
    assert generate(m, PROMPTS, 12, GREEDY, compile=True) == generate(m, PROMPTS, 12, GREEDY)
