"""The backbone: cached = uncached, padding and masks, block-causal attention, sliding cache."""

import pytest
import torch
from conftest import tiny_model

from argen.engine.config import TransformerConfig
from argen.engine.rope import apply_rope
from argen.engine.transformer import Transformer


@pytest.mark.parametrize("kw, cuts", [({}, (7, 8)), ({"block_sizes": [1, 4, 16]}, (1, 5))])
def test_cached_chunks_equal_full_forward(kw, cuts):
    """Whole blocks fed chunk by chunk through the cache give the logits of one full pass."""
    m = tiny_model(**kw)
    x = torch.randint(50, (3, 21))
    a, b = cuts
    with torch.no_grad():
        full = m(x)
        cache = m.new_cache(3, 21)
        parts = [m(x[:, :a], cache=cache), m(x[:, a:b], cache=cache), m(x[:, b:], cache=cache)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)
    assert cache.length == 21


def test_left_padding_does_not_change_logits():
    m = tiny_model()
    x = torch.randint(50, (1, 9))
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), x], 1)
    pos = torch.cat([torch.full((1, 4), -1), torch.arange(9)[None]], 1)
    with torch.no_grad():
        ref = m(x)
        out = m(padded, pos=pos)[:, 4:]
    assert torch.allclose(out, ref, atol=1e-5)


def test_block_causal_mask_is_bidirectional_inside_blocks_only():
    m = tiny_model(block_size=4)
    x = torch.randint(50, (1, 12))
    y = x.clone()
    y[0, 6] = (y[0, 6] + 1) % 50  # change a token in the second block (positions 4..7)
    with torch.no_grad():
        a, b = m(x), m(y)
    diff = (a - b).abs().amax(-1)[0]
    assert torch.all(diff[:4] < 1e-6), "an earlier block must not see a later block"
    assert torch.all(diff[4:] > 1e-4), "every position of the same and later blocks sees the change"


def test_prefix_tokens_condition_every_position():
    m = tiny_model(prefix_len=2, cond_dim=8)
    x = torch.randint(50, (1, 6))
    p1, p2 = torch.randn(1, 2, 8), torch.randn(1, 2, 8)
    with torch.no_grad():
        a, b = m(x, prefix=p1), m(x, prefix=p2)
        assert a.shape == (1, 8, 50)
        cache = m.new_cache(1, 8)
        c = torch.cat([m(x[:, :3], prefix=p1, cache=cache), m(x[:, 3:], cache=cache)], 1)
    assert (a - b)[:, 2:].abs().amax() > 1e-4
    assert torch.allclose(a, c, atol=1e-5)


def test_grouped_query_attention_matches_repeated_heads():
    m = tiny_model(n_head=4, n_kv_head=1)
    full = tiny_model(n_head=4, n_kv_head=4)
    sd = m.state_dict()
    for i in range(m.cfg.n_layer):
        for name in ("k_proj", "v_proj"):
            w = sd[f"layers.{i}.attn.{name}.weight"]  # (hd, C): one kv head shared by 4 query heads
            sd[f"layers.{i}.attn.{name}.weight"] = w.repeat(4, 1)
    full.load_state_dict(sd)
    x = torch.randint(50, (2, 10))
    with torch.no_grad():
        assert torch.allclose(m(x), full(x), atol=1e-5)


def test_evicted_cache_equals_recomputing_the_window():
    m = tiny_model(n_layer=1)  # one layer: kept keys do not depend on the dropped tokens
    x = torch.randint(50, (2, 14))
    with torch.no_grad():
        cache = m.new_cache(2, 14)
        m(x[:, :10], cache=cache)
        shift = cache.evict(4, 0, m.rope)
        assert shift.tolist() == [4, 4]
        out = m(x[:, 10:], pos=torch.arange(6, 10).expand(2, 4), cache=cache)
        ref = m(x[:, 4:])[:, -4:]
    assert torch.allclose(out, ref, atol=1e-5)


def test_a_cache_of_learned_positions_refuses_to_slide_and_stays_whole():
    m = tiny_model(n_layer=1, pos_emb="learned")
    with torch.no_grad():
        cache = m.new_cache(1, 12)
        m(torch.randint(50, (1, 10)), cache=cache)
    keys, pos = cache.k[0].clone(), cache.pos.clone()
    with pytest.raises(ValueError, match="only a RoPE model's cache can slide"):
        cache.evict(3, 0, m.rope)
    assert torch.equal(cache.k[0], keys) and torch.equal(cache.pos, pos) and cache.length == 10


def test_attention_sink_keeps_first_tokens():
    m = tiny_model(n_layer=1)
    x = torch.randint(50, (1, 12))
    with torch.no_grad():
        cache = m.new_cache(1, 12)
        m(x[:, :10], cache=cache)
        cache.evict(3, 2, m.rope)  # keep 0,1 then 5..9
        out = m(x[:, 10:], cache=cache, pos=torch.tensor([[7, 8]]))
        kept = torch.cat([x[:, :2], x[:, 5:]], 1)
        ref = m(kept)[:, -2:]
    assert cache.pos[0, :9].tolist() == list(range(9))
    assert torch.allclose(out, ref, atol=1e-5)


def test_cache_overflow_is_an_error():
    m = tiny_model()
    cache = m.new_cache(1, 4)
    with pytest.raises(RuntimeError, match="KV cache full"):
        m(torch.zeros(1, 5, dtype=torch.long), cache=cache)


def test_config_param_count_matches_model():
    for kw in ({}, {"mlp": "gelu", "norm": "layernorm", "norm_bias": True, "pos_emb": "learned", "qkv_bias": True,
                "out_bias": True, "mlp_bias": True, "tie_embeddings": True}, {"cond_dim": 8, "prefix_len": 2}):
        cfg = TransformerConfig(vocab_size=40, n_layer=2, d_model=32, n_head=4, max_seq_len=16, **kw)
        assert cfg.num_params() == Transformer(cfg).num_params()


def test_uneven_blocks_follow_the_listed_sizes():
    m = tiny_model(block_sizes=[1, 4, 16], prefix_len=2, cond_dim=8)
    pos = torch.arange(2 + 1 + 4 + 16 + 10)[None]
    ids = m.block_ids(pos)[0].tolist()
    assert ids[:2] == [0, 0] and ids[2] == 1 and ids[3:7] == [2] * 4 and ids[7:23] == [3] * 16
    assert ids[23:33] == [4] * 10  # past the list, the last size repeats
    mask = m.attention_mask(pos, pos)[0, 0]
    assert mask[3, 6] and not mask[3, 7] and mask[22, 3] and mask[7, 0]



def test_expand_runs_gives_each_token_its_vector():
    from argen.engine.transformer import expand_runs

    v = torch.randn(2, 4, 3)
    got = expand_runs(v, ((1, 5), (3, 2)))  # vector 0 for 5 tokens, then vectors 1, 2, 3 for 2 each
    index = torch.tensor([0] * 5 + [1, 1, 2, 2, 3, 3])
    assert torch.equal(got, v[:, index])


def test_adaln_blocks_start_as_the_identity_and_then_follow_their_conditioning():
    cfg = TransformerConfig(vocab_size=50, n_layer=2, n_head=2, d_model=16, adaln=True)
    m = Transformer(cfg).eval()
    h = torch.randn(2, 6, 16)
    runs = ((1, 2), (2, 2))  # a prefix vector for two tokens, then two vectors for two tokens each
    cond = torch.randn(2, 3, 16)
    with torch.no_grad():
        out = m(None, embeds=h, head=False, mod=(cond, runs))
        assert torch.allclose(out, m.norm(h), atol=1e-6)  # adaLN-Zero: every branch gated off
        for name, p in m.named_parameters():
            if ".ada." in name:
                torch.nn.init.normal_(p, std=0.1)
        a = m(None, embeds=h, head=False, mod=(cond, runs))
        other = cond.clone()
        other[:, 2] += 1.0  # change the vector of the last two tokens only
        b = m(None, embeds=h, head=False, mod=(other, runs))
    assert not torch.allclose(a, m.norm(h), atol=1e-3)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)  # causal: earlier tokens cannot see it
    assert not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-3)
    with pytest.raises(ValueError, match="adaLN models need mod"):
        m(None, embeds=h, head=False)


def test_3d_rope_scores_depend_on_frame_and_grid_offsets_only():
    start, width = 3, 4  # three caption tokens, then frames of a 4 x 4 token grid
    model = Transformer(TransformerConfig(vocab_size=8, n_layer=1, n_head=2, d_model=32, rope_grid=width,
                                          rope_frame=width * width, rope_grid_start=start))
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def at(f, r, c):
        return torch.tensor([[start + (f * width + r) * width + c]])

    def score(pa, pb):
        return (apply_rope(q, *model.rope(pa, torch.float32)) * apply_rope(k, *model.rope(pb, torch.float32))).sum()

    same = score(at(3, 2, 1), at(1, 1, 3))
    assert torch.allclose(same, score(at(5, 3, 1), at(3, 2, 3)), atol=1e-5)  # offset (2, 1, -2) again
    for other in [at(2, 1, 3), at(1, 2, 3), at(1, 1, 2)]:  # another frame, row or column
        assert not torch.allclose(same, score(at(3, 2, 1), other), atol=1e-3)
    # a caption token sits at time p, row and column 0: the first frame is the next time step
    assert torch.allclose(score(at(0, 0, 0), torch.tensor([[start - 1]])), score(at(1, 0, 0), at(0, 0, 0)), atol=1e-5)
    with pytest.raises(ValueError, match="3D RoPE"):
        TransformerConfig(n_head=2, d_model=32, rope_frame=16)
