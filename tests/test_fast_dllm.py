"""Fast-dLLM v2 on argen's Qwen2 loader: a tiny random Qwen2 saved by transformers, relabelled as
Fast-dLLM v2, gives the logits of transformers' Qwen2ForCausalLM fed Fast-dLLM v2's 4-D
block-causal mask, uncached and block by block through the cache; its decoding obeys the token
shift, the sub-blocks and the threshold."""

import json

import pytest
import torch

from argen.engine.sampling.processors import SamplingConfig
from argen.modalities.text.block_diffusion.api import generate_blocks, load_block_diffusion

BD, VOCAB, MASK = 4, 96, 95


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(transformers' Qwen2ForCausalLM, the same weights loaded through argen as Fast-dLLM v2)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=False, attn_implementation="eager")
    hf = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():  # random q/k/v biases (Qwen2 initialises them to zero), a peaked head
        hf.lm_head.weight.mul_(40.0)
        for layer in hf.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.1)
    folder = tmp_path_factory.mktemp("fdllm") / "fast-dllm-tiny"
    hf.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="Fast_dLLM_Qwen", architectures=["Fast_dLLM_QwenForCausalLM"], bd_size=BD,
                  mask_token_id=MASK)
    (folder / "config.json").write_text(json.dumps(config))
    return hf, load_block_diffusion(folder)


def fast_dllm_mask(q_pos: torch.Tensor, k_len: int) -> torch.Tensor:
    """Fast-dLLM v2's eval_block_diff_mask as an additive 4-D mask (1, 1, T, S)."""
    allowed = (q_pos[:, None] // BD) >= (torch.arange(k_len)[None] // BD)
    return torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)[None, None]


def test_logits_match_qwen2_with_the_block_mask(pair):
    hf, model = pair
    assert model.family == "fast-dllm-v2" and model.block_size == BD and model.token_shift
    ids = torch.randint(0, MASK, (2, 14))
    with torch.no_grad():
        ref = hf(ids, attention_mask=fast_dllm_mask(torch.arange(14), 14)).logits
        ours = model.net(ids)
    assert (ours - ref).abs().max() <= 1e-4
    # the mask matters: plain causal attention differs inside blocks
    with torch.no_grad():
        causal = hf(ids).logits
    assert (causal - ref).abs().max() > 1e-3


def test_cached_blocks_match_qwen2_with_a_cache(pair):
    from transformers import DynamicCache

    hf, model = pair
    ids = torch.randint(0, MASK, (1, 12))
    cache, past = model.new_cache(1, 12), DynamicCache()
    with torch.no_grad():
        for start in range(0, 12, BD):
            q = torch.arange(start, start + BD)
            ref = hf(ids[:, start:start + BD], attention_mask=fast_dllm_mask(q, start + BD), cache=past,
                     position_ids=q[None], use_cache=True).logits
            ours = model(ids[:, start:start + BD], q[None], cache, slice(None))
            assert (ours - ref).abs().max() <= 1e-4


@pytest.mark.parametrize("threshold", [1.0, 0.3])
def test_decoding_is_cached_equals_recomputed_and_shifted(pair, threshold):
    _, model = pair
    prompts, greedy = [[3, 1, 4, 1, 5], [9, 2, 6, 5]], SamplingConfig(temperature=0.0)
    runs = [generate_blocks(model, prompts, [0, 1], 11, threshold=threshold, sub_block=2, sampling=greedy,
                            use_cache=c) for c in (True, False)]
    assert runs[0] == runs[1]
    tokens, passes = runs[0]
    assert all(len(t) == 11 and MASK not in t for t in tokens)
    # token shift: the token after a whole block is what the model, fed that block, predicts at its end
    with torch.no_grad():
        logits = model.net(torch.tensor([prompts[1]]))
    assert tokens[1][0] == int(logits[0, -1, :MASK].argmax())
    if threshold == 1.0:  # one token per pass
        assert passes == [-(-(len(p) % BD + 11) // BD) * BD - len(p) % BD for p in prompts]
    else:
        assert all(p < 11 for p in passes)
