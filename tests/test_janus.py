"""Janus-Pro text-to-image on argen's engine, checked against transformers 5's own
``JanusForConditionalGeneration`` on a tiny random checkpoint in its layout (tests/janus_tiny.py):
image-token logits at every position, whole greedy grids with CFG, decoded pixels, the prompt
format, batching, negative prompts, inpainting and the one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from argen.engine.sampling.processors import SamplingConfig
from argen.errors import ArgenError, UsageError
from argen.modalities.image.janus.pipeline import JanusImage, matches
from argen.modalities.image.janus.prompts import chat_text
from tests.janus_tiny import BOI, make_tokenizer, save_tiny_janus

torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and the CI machine is shared

PROMPTS = ["a red cat", "a big dog"]  # the same token length: transformers' batch has no padding then


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("janus") / "tiny-janus"
    ref = save_tiny_janus(folder)
    return folder, ref, JanusImage.from_pretrained(folder)


def hf_inputs(prompts):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=make_tokenizer())
    return torch.tensor([tok(chat_text(p) + BOI)["input_ids"] for p in prompts])


def hf_logits(ref, ids: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
    """transformers: text embeddings, then image tokens through the generation embedding and
    aligner; the generation head on every position -> (B, T, K)."""
    with torch.no_grad():
        emb = torch.cat([ref.get_input_embeddings()(ids), ref.prepare_embeddings_for_image_generation(image_tokens)], 1)
        h = ref.model.language_model(inputs_embeds=emb).last_hidden_state
        return ref.model.generation_head(h)


def test_matches_reads_config_json_only(tiny):
    folder = tiny[0]
    assert matches(json.loads((folder / "config.json").read_text()))
    assert not matches({"model_type": "llama"}) and not matches({"format": "argen"})


def test_prompt_ids_are_the_reference_chat_format(tiny):
    pipe = tiny[2]
    assert chat_text("  a red cat \n") == "<|User|>: a red cat\n\n<|Assistant|>:"
    ids = pipe.prompt_ids(PROMPTS)
    assert ids == hf_inputs(PROMPTS).tolist()  # BOS + chat text + <begin_of_image>, as transformers tokenizes it
    ref_ids = pipe.prompts.ids
    uncond = pipe.uncond_ids(ids, None)[0]
    assert uncond[0] == ref_ids.bos and uncond[-1] == ref_ids.boi and set(uncond[1:-1]) == {ref_ids.pad}
    assert len(uncond) == len(ids[0])


def test_image_logits_at_every_position_match_transformers(tiny):
    _, ref, pipe = tiny
    ids = hf_inputs(PROMPTS)
    img = torch.randint(0, pipe.spec.codebook_size, (2, pipe.num_tokens), generator=torch.Generator().manual_seed(1))
    want = hf_logits(ref, ids, img)  # (B, T, K)
    k = pipe.spec.codebook_size
    with torch.no_grad():
        got = pipe.model(torch.cat([ids + k, img], 1))
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-4
    assert want.std().item() > 0.5  # the logits are far from flat, so the comparison means something


def test_cached_decoding_equals_the_full_forward(tiny):
    pipe = tiny[2]
    k = pipe.spec.codebook_size
    seq = torch.cat([torch.tensor(pipe.prompt_ids(PROMPTS)) + k,
                     torch.randint(0, k, (2, 6), generator=torch.Generator().manual_seed(3))], 1)
    with torch.no_grad():
        full = pipe.model(seq)
        cache = pipe.model.new_cache(2, seq.shape[1])
        pos = torch.arange(seq.shape[1]).expand(2, -1)
        steps = [pipe.model(seq[:, :-6], pos[:, :-6], cache)]
        steps += [pipe.model(seq[:, t:t + 1], pos[:, t:t + 1], cache) for t in range(seq.shape[1] - 6, seq.shape[1])]
    assert (torch.cat(steps, 1) - full).abs().max().item() <= 1e-5


def test_greedy_cfg_grid_equals_transformers_generate(tiny):
    _, ref, pipe = tiny
    from transformers import GenerationConfig

    ids = hf_inputs(PROMPTS)
    gc = GenerationConfig.from_pretrained(tiny[0])
    with torch.no_grad():
        want = ref.generate(ids, attention_mask=torch.ones_like(ids), generation_config=gc, do_sample=False,
                            guidance_scale=5.0, generation_mode="image")
    got = pipe.sample_tokens(PROMPTS, sampling=SamplingConfig(temperature=0, cfg_scale=5.0))
    assert got.tolist() == want.tolist()
    assert len(set(got.flatten().tolist())) > 3  # a real grid, not one repeated code
    assert got.tolist() != pipe.sample_tokens(PROMPTS, sampling=SamplingConfig(temperature=0)).tolist()


def test_cached_sampling_equals_uncached(tiny):
    pipe = tiny[2]
    s = SamplingConfig(temperature=1.0, cfg_scale=3.0, top_k=20)
    a = pipe.sample_tokens(PROMPTS, seeds=[3, 4], sampling=s)
    assert a.tolist() == pipe.sample_tokens(PROMPTS, seeds=[3, 4], sampling=s, use_cache=False).tolist()


def test_a_row_is_the_same_alone_or_in_a_batch(tiny):
    pipe = tiny[2]
    prompts, seeds, neg = ["a red cat", "a very small, old dog", "an apple"], [7, 8, 9], [None, "a cat", None]
    batch = pipe.sample_tokens(prompts, seeds=seeds, negative_prompts=neg)
    for i in range(3):
        alone = pipe.sample_tokens([prompts[i]], seeds=[seeds[i]], negative_prompts=[neg[i]])
        assert alone[0].tolist() == batch[i].tolist()
    assert batch[0].tolist() != batch[2].tolist()


def test_negative_prompt_is_what_the_unconditional_branch_reads(tiny):
    pipe = tiny[2]
    # cfg 0 samples from the unconditional logits alone: prompt P with negative N is then the
    # conditional model on N (cfg 1)
    uncond_only = pipe.sample_tokens(["a red cat"], seeds=[5], negative_prompts=["a big dog"],
                                     sampling=SamplingConfig(cfg_scale=0.0))
    cond_on_n = pipe.sample_tokens(["a big dog"], seeds=[5], sampling=SamplingConfig(cfg_scale=1.0))
    assert uncond_only.tolist() == cond_on_n.tolist()
    default = pipe.sample_tokens(["a red cat"], seeds=[5], sampling=SamplingConfig(cfg_scale=5.0))
    negated = pipe.sample_tokens(["a red cat"], seeds=[5], negative_prompts=["a big dog"])
    assert default.tolist() != negated.tolist()


def test_inpainting_teacher_forces_tokens_outside_the_mask(tiny):
    pipe = tiny[2]
    greedy = SamplingConfig(temperature=0, cfg_scale=5.0)
    free = pipe.sample_tokens(PROMPTS[:1], sampling=greedy)
    n = pipe.num_tokens
    forced = torch.full((1, n), -1)
    forced[0, : n // 2] = free[0, : n // 2]  # forcing what the model would choose changes nothing
    assert pipe.sample_tokens(PROMPTS[:1], sampling=greedy, forced=forced).tolist() == free.tolist()
    other = (free + 7) % pipe.spec.codebook_size
    forced[0, : n // 2] = other[0, : n // 2]
    out = pipe.sample_tokens(PROMPTS[:1], sampling=greedy, forced=forced)
    assert out[0, : n // 2].tolist() == other[0, : n // 2].tolist()
    assert out[0, n // 2:].tolist() != free[0, n // 2:].tolist()  # the rest follows the forced context


def test_decoded_pixels_match_transformers(tiny):
    _, ref, pipe = tiny
    tokens = torch.randint(0, pipe.spec.codebook_size, (2, pipe.num_tokens), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = ref.decode_image_tokens(tokens).permute(0, 3, 1, 2)  # (B, 3, H, W)
    got = pipe.decode_float(tokens)
    assert got.shape == want.shape == (2, 3, pipe.image_size, pipe.image_size)
    assert (got - want).abs().max().item() <= 1e-3
    images = pipe.decode(tokens)
    assert images.dtype == np.uint8 and images.shape == (2, pipe.image_size, pipe.image_size, 3)


def test_encode_is_the_reference_encoder_with_l2_matching(tiny):
    _, ref, pipe = tiny
    images = np.random.default_rng(0).integers(0, 256, (2, pipe.image_size, pipe.image_size, 3), dtype=np.uint8)
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():  # transformers' encoder, then LlamaGen's cosine matching (codebook_l2_norm)
        z = ref.model.vqmodel.quant_conv(ref.model.vqmodel.encoder(x)).permute(0, 2, 3, 1).flatten(1, 2)
        e = torch.nn.functional.normalize(ref.model.vqmodel.quantize.embedding.weight, dim=-1)
        want = (torch.nn.functional.normalize(z, dim=-1) @ e.t()).argmax(-1)
    assert pipe.encode(images).tolist() == want.tolist()


def test_bad_inputs_are_one_line_errors(tiny, tmp_path):
    folder, _, pipe = tiny
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG not a model")
    for bad in (png, tmp_path):
        with pytest.raises(ArgenError, match="not a model folder|no config.json"):
            JanusImage.from_pretrained(bad)
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 10}))
    with pytest.raises(ArgenError, match="not a Janus checkpoint"):
        JanusImage.from_pretrained(llama)
    with pytest.raises(UsageError, match="takes at most"):
        pipe.sample_tokens(["a cat " * 30])
    with pytest.raises(UsageError, match="empty"):
        pipe.sample_tokens([" "])
    with pytest.raises(UsageError, match="forced tokens"):
        pipe.sample_tokens(PROMPTS, forced=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(UsageError, match="negative prompt"):
        pipe.sample_tokens(PROMPTS[:1], negative_prompts=["dog"], sampling=SamplingConfig(cfg_scale=1.0))
    for e in (ArgenError, UsageError):
        assert "\n" not in str(e)
    assert pipe.max_prompt_tokens == 128 - pipe.num_tokens


# Janus-Pro-1B: the tech report's Table 1 (deepseek-ai/Janus janus_pro_tech_report.pdf: embedding
# size 2048, 16 heads, 24 layers, vocabulary "100K" = the DeepSeek tokenizer's 102400) with the
# DeepSeek-LLM 1.5B feed-forward width 5632; SigLIP-L, the aligners and the VQ at transformers'
# JanusVisionConfig / JanusVQVAEConfig defaults, which are Janus-Pro-1B's.
PRO_1B_TEXT = dict(model_type="llama", vocab_size=102400, hidden_size=2048, intermediate_size=5632,
                   num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=16,
                   max_position_embeddings=16384)
# deepseek-ai/Janus-Pro-1B on the Hugging Face hub: model.safetensors, 4.18 GB of bfloat16
PUBLISHED_1B_PARAMS = 4.18e9 / 2


def test_janus_pro_1b_keys_and_shapes_add_up_to_the_published_size():
    from transformers import JanusConfig, JanusForConditionalGeneration

    from argen.checkpoints.argen_format import check_state
    from argen.modalities.image.janus.config import janus_spec
    from argen.modalities.image.janus.load import split_state, wanted
    from argen.modalities.image.janus.model import JanusImageLM
    from argen.modalities.image.llamagen.vq import LlamaGenVQ

    cfg = JanusConfig(text_config=PRO_1B_TEXT)
    with torch.device("meta"):
        ref = JanusForConditionalGeneration(cfg)
    state = ref.state_dict()  # the released layout: embedding and text head stored apart
    total = sum(v.numel() for v in state.values())
    assert abs(total - PUBLISHED_1B_PARAMS) / PUBLISHED_1B_PARAMS < 0.01  # 2.077B of 2.09B: the rest is
    # SigLIP's attention-pool head, which transformers' conversion drops

    spec = janus_spec(cfg.to_dict())
    assert (spec.grid, spec.image_size, spec.codebook_size, spec.code_dim) == (24, 384, 16384, 8)
    gen, vq = split_state(state, spec, "Janus-Pro-1B")  # every generation key has an argen name...
    with torch.device("meta"):
        model, vq_model = JanusImageLM(spec), LlamaGenVQ(spec.vq)
    expected = {k: v.shape for k, v in model.state_dict().items() if k != "lm.lm_head.weight"}
    check_state(gen, expected, "Janus-Pro-1B", "argen model", "")  # ...and each argen weight its shape
    check_state(vq, {k: v.shape for k, v in vq_model.state_dict().items()}, "Janus-Pro-1B", "argen VQ", "")
    loaded = sum(v.numel() for v in gen.values()) + sum(v.numel() for v in vq.values())
    unused = sum(v.numel() for k, v in state.items() if not wanted(k) or k == "model.vqmodel.quantize.codebook_used")
    assert loaded + unused == total
    assert 1.55e9 < loaded < 1.57e9  # what image generation runs: the LLM, the generation ends and the VQ


def test_int8_and_bfloat16_stay_close_to_float32(tiny):
    folder, _, pipe = tiny
    k = pipe.spec.codebook_size
    img = torch.randint(0, k, (2, 8), generator=torch.Generator().manual_seed(4))
    seq = torch.cat([torch.tensor(pipe.prompt_ids(PROMPTS)) + k, img], 1)
    with torch.no_grad():
        ref = pipe.model(seq)
        for kw in ({"dtype": torch.bfloat16}, {"dtype": torch.bfloat16, "quantize": "int8"}):
            other = JanusImage.from_pretrained(folder, **kw)
            got = other.model(seq).float()
            assert ((got - ref).norm() / ref.norm()).item() < 0.06  # 1.9% in bfloat16, 2.9% with int8
            assert other.sample_tokens(PROMPTS, seeds=[1, 2]).shape == (2, pipe.num_tokens)
    assert type(other.model.head_out).__name__ == "Int8Linear"
    with pytest.raises(UsageError, match="unknown --quantize"):
        JanusImage.from_pretrained(folder, quantize="int4")


def test_janus_config_with_another_models_weights_is_refused(tiny, tmp_path):
    import shutil

    from safetensors.torch import save_file

    folder = tmp_path / "mixed"
    shutil.copytree(tiny[0], folder)
    save_file({"transformer.wte.weight": torch.zeros(4, 4)}, str(folder / "model.safetensors"))
    with pytest.raises(ArgenError, match="a Janus checkpoint does not have"):
        JanusImage.from_pretrained(folder)
