"""LlamaGen text-to-image on argen's engine, checked against numbers recorded once from
FoundationVision/LlamaGen's own code (tests/fixtures/llamagen_t2i/README.md) on the same seeded
weights in the official key layout (tests/llamagen_t2i_weights.py)."""

from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from argen.engine.sampling.processors import SamplingConfig
from argen.errors import ArgenError, UsageError
from argen.modalities.image.llamagen_t2i.config import T2IConfig, matches
from argen.modalities.image.llamagen_t2i.load import convert_llamagen_t2i, load_official
from argen.modalities.image.llamagen_t2i.pipeline import LlamaGenT2IImage
from argen.modalities.image.llamagen_t2i.text_encoder import T5CaptionEncoder, left_pad
from tests import llamagen_t2i_weights as W

torch.set_num_threads(1)
FIXTURE = Path(__file__).parent / "fixtures" / "llamagen_t2i" / "reference.npz"
TINY = T2IConfig(model="tiny", image_size=2 * W.GRID, downsample=2, vocab_size=W.VOCAB, caption_dim=W.CAPTION_DIM,
                 size=[W.LAYERS, W.HEADS, W.DIM])


def fake_t5(prompts):
    """Stand-in text encoder: seeded states per prompt, one valid token per word plus the end token."""
    states, masks = [], []
    for p in prompts:
        g = torch.Generator().manual_seed(zlib.crc32(p.encode()))
        states.append(torch.randn(W.CLS_TOKENS, W.CAPTION_DIM, generator=g))
        m = torch.zeros(W.CLS_TOKENS, dtype=torch.long)
        m[: len(p.split()) + 1] = 1
        masks.append(m)
    return torch.stack(states), torch.stack(masks)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    d = tmp_path_factory.mktemp("t2i")
    # as train_t2i.py saves them: the weights under "model", its argparse.Namespace beside them
    torch.save({"model": W.gpt_state(), "steps": 10, "args": argparse.Namespace(gpt_model="GPT-tiny")}, d / "t2i.pt")
    torch.save({"model": {**W.vq_state(), "quantize.codebook_used": torch.zeros(65536)}}, d / "vq.pt")
    return d


@pytest.fixture(scope="module")
def pipe(official):
    out = convert_llamagen_t2i(official / "t2i.pt", official / "vq.pt", official / "converted", image_size=8,
                               cfg=TINY, vq_cfg=W.vq_config())
    return LlamaGenT2IImage.from_pretrained(out, text_encoder=fake_t5)


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIXTURE))


def reference_captions():
    return left_pad(*W.captions())


def test_config_json_names_the_family(pipe, official):
    import json

    meta = json.loads((official / "converted" / "config.json").read_text())
    assert matches(meta) and meta["llamagen_t2i"]["image_size"] == 8
    assert not matches({"format": "argen", "family": "llamagen"}) and not matches({"model_type": "janus"})


def test_logits_at_every_position_match_the_reference(pipe, ref):
    """Image tokens teacher-forced through prefill + cached decoding, guided twins included."""
    caps, valid = reference_captions()
    null = pipe.model.uncond_embedding[None].expand(2, -1, -1)
    bound = pipe.model.bind(torch.cat([caps, null]), torch.cat([valid, valid]))
    forced = W.forced_grid()
    seq = torch.cat([torch.tensor(bound.prompts()), torch.cat([forced, forced])[:, :-1]], 1)  # (2B, 120 + 15)
    with torch.no_grad():
        full = bound(seq)[:, W.CLS_TOKENS - 1:]  # (2B, 16, V): the logits that predict each image token
        cache = bound.new_cache(4, seq.shape[1])
        pos = torch.arange(seq.shape[1]).expand(4, -1)
        cached = [bound(seq[:, :W.CLS_TOKENS], pos[:, :W.CLS_TOKENS], cache)[:, -1:]]
        cached += [bound(seq[:, t:t + 1], pos[:, t:t + 1], cache) for t in range(W.CLS_TOKENS, seq.shape[1])]
    want = torch.cat([torch.from_numpy(ref["logits_cond"]), torch.from_numpy(ref["logits_uncond"])])
    assert (full - want).abs().max().item() <= 1e-4
    assert (torch.cat(cached, 1) - want).abs().max().item() <= 1e-4
    assert (full - torch.cat(cached, 1)).abs().max().item() <= 1e-5  # cached equals uncached
    assert want.std().item() > 0.5


def test_greedy_grids_with_and_without_cfg_equal_the_reference(pipe, ref):
    caps, valid = reference_captions()
    guided = pipe.sample_tokens_from_captions(caps, valid,
                                              sampling=SamplingConfig(temperature=0, cfg_scale=W.CFG_SCALE))
    plain = pipe.sample_tokens_from_captions(caps, valid, sampling=SamplingConfig(temperature=0, cfg_scale=1.0))
    assert guided.tolist() == ref["greedy_cfg"].tolist()
    assert plain.tolist() == ref["greedy_nocfg"].tolist()
    assert guided.tolist() != plain.tolist()


def test_decoded_pixels_match_the_reference(pipe, ref):
    got = pipe.decode_float(torch.from_numpy(ref["greedy_cfg"]))
    assert got.shape == ref["pixels"].shape
    assert np.abs(got.numpy() - ref["pixels"]).max() <= 1e-3
    assert pipe.decode(torch.from_numpy(ref["greedy_cfg"])).shape == (2, 8, 8, 3)


def test_cached_sampling_equals_uncached_and_rows_are_batch_independent(pipe):
    prompts, seeds = ["a red cat", "a dog on a very long road", "sky"], [1, 2, 3]
    s = SamplingConfig(temperature=1.0, top_k=30, cfg_scale=3.0)
    batch = pipe.sample_tokens(prompts, seeds=seeds, sampling=s)
    assert batch.tolist() == pipe.sample_tokens(prompts, seeds=seeds, sampling=s, use_cache=False).tolist()
    for i in range(3):
        assert pipe.sample_tokens([prompts[i]], seeds=[seeds[i]], sampling=s)[0].tolist() == batch[i].tolist()


def test_negative_prompt_is_what_the_unconditional_branch_reads(pipe):
    uncond_only = pipe.sample_tokens(["a red cat"], seeds=[4], negative_prompts=["a big dog"],
                                     sampling=SamplingConfig(cfg_scale=0.0))
    cond_on_negative = pipe.sample_tokens(["a big dog"], seeds=[4], sampling=SamplingConfig(cfg_scale=1.0))
    assert uncond_only.tolist() == cond_on_negative.tolist()
    mixed = pipe.sample_tokens(["a red cat", "a cat"], seeds=[4, 5], negative_prompts=["a big dog", None])
    assert mixed[1].tolist() == pipe.sample_tokens(["a cat"], seeds=[5])[0].tolist()  # None: the null caption
    assert mixed[0].tolist() != pipe.sample_tokens(["a red cat"], seeds=[4])[0].tolist()


def test_inpainting_forces_tokens_outside_the_mask(pipe):
    greedy = SamplingConfig(temperature=0, cfg_scale=4.0)
    free = pipe.sample_tokens(["a red cat"], sampling=greedy)
    forced = torch.full_like(free, -1)
    forced[0, :8] = (free[0, :8] + 5) % W.VOCAB
    out = pipe.sample_tokens(["a red cat"], sampling=greedy, forced=forced)
    assert out[0, :8].tolist() == forced[0, :8].tolist() and out[0, 8:].tolist() != free[0, 8:].tolist()


def test_t5_encoder_pads_counts_and_refuses_long_prompts():
    """The T5 path with a tiny random encoder and a character tokenizer (no download)."""
    from tokenizers import Tokenizer, models, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    chars = "abcdefghijklmnopqrstuvwxyz "
    tok = Tokenizer(models.BPE(vocab={c: i + 2 for i, c in enumerate(chars)} | {"<pad>": 0, "</s>": 1}, merges=[]))
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    enc = T5CaptionEncoder("unused", max_tokens=W.CLS_TOKENS)
    enc.tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>")
    torch.manual_seed(0)
    enc.model = T5EncoderModel(T5Config(vocab_size=32, d_model=W.CAPTION_DIM, d_kv=8, d_ff=64, num_layers=1,
                                        num_heads=4)).eval()
    states, mask = enc(["A  Red Cat "])  # cleaned to "a red cat": 9 characters and the end token
    assert states.shape == (1, W.CLS_TOKENS, W.CAPTION_DIM) and mask[0].tolist() == [1] * 10 + [0] * 110
    caps, valid = left_pad(states, mask)
    assert valid[0].tolist() == [False] * 110 + [True] * 10 and torch.equal(caps[0, 110:], states[0, :10])
    assert caps[0, :110].abs().max() == 0
    with pytest.raises(UsageError, match="at most 120"):
        enc(["a" * 130])


def test_published_parameter_counts():
    """LlamaGen README: LlamaGen-XL (775M) for t2i_XL_stage1_256.pt and t2i_XL_stage2_512.pt,
    vq_ds16_t2i (72M). The official XL key set (gpt.py shapes) maps onto argen's model exactly."""
    from argen.modalities.image.llamagen.gpt import ffn_width
    from argen.modalities.image.llamagen.vq import LlamaGenVQ
    from argen.modalities.image.llamagen_t2i.load import from_official_state

    shapes = W.gpt_shapes(dim=1280, layers=36, vocab=16384, caption_dim=2048, ffn=ffn_width(1280))
    with torch.device("meta"):
        state = {k: torch.empty(s) for k, s in shapes.items()}
        counts = []
        for size in (256, 512):
            model = from_official_state(state, T2IConfig("gpt-xl", size), "XL")
            counts.append(sum(p.numel() for p in model.parameters()))
        vq = sum(p.numel() for p in LlamaGenVQ().parameters())
    assert counts[0] == counts[1] == sum(np.prod(s) for k, s in shapes.items() if "uncond" not in k)
    assert abs(counts[0] - 775e6) / 775e6 < 0.005  # 777.7M: the class table (1.3M) swapped for the caption MLP (4.3M)
    assert abs(vq - 72e6) / 72e6 < 0.01


def test_bad_inputs_are_one_line_errors(pipe, official, tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(ArgenError, match="not a PyTorch checkpoint"):
        load_official(text, 256)
    c2i = {"cls_embedding.embedding_table.weight": torch.zeros(3, 4), "tok_embeddings.weight": torch.zeros(5, 4)}
    torch.save({"model": c2i}, tmp_path / "c2i.pt")
    with pytest.raises(ArgenError, match="class-conditional"):
        load_official(tmp_path / "c2i.pt", 256, cfg=TINY)
    with pytest.raises(ArgenError, match="not a LlamaGen GPT"):
        load_official(official / "vq.pt", 256)
    torch.save({"model": W.gpt_state(), "hook": ArgenError("x")}, tmp_path / "pickled.pt")
    with pytest.raises(ArgenError, match="refused to load"):
        load_official(tmp_path / "pickled.pt", 256, cfg=TINY)
    with pytest.raises(ArgenError, match="not a model folder"):
        LlamaGenT2IImage.from_pretrained(official / "t2i.pt")
    janus = tmp_path / "janus"
    janus.mkdir()
    (janus / "config.json").write_text('{"model_type": "janus"}')
    with pytest.raises(ArgenError, match="not a LlamaGen text-to-image"):
        LlamaGenT2IImage.from_pretrained(janus)
    with pytest.raises(UsageError, match="empty"):
        pipe.sample_tokens([""])
    with pytest.raises(UsageError, match="forced tokens"):
        pipe.sample_tokens(["a cat"], forced=torch.zeros(1, 3, dtype=torch.long))
    assert pipe.max_prompt_tokens == 120 and pipe.image_size == 8 and pipe.defaults.cfg_scale == 7.5


class FakeT5:
    """Stands in for T5CaptionEncoder in the CLI: fake_t5's states, one token per word plus the end."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def count_tokens(self, prompts):
        return [len(p.split()) + 1 for p in prompts]

    def __call__(self, prompts):
        return fake_t5(prompts)


def test_argen_image_runs_a_converted_folder_with_the_published_defaults(pipe, official, tmp_path, monkeypatch, capsys):
    import argen
    from argen.cli.app import main
    from argen.modalities.image.llamagen_t2i import pipeline as t2i_pipeline

    monkeypatch.setattr(t2i_pipeline, "T5CaptionEncoder", FakeT5)
    folder = str(official / "converted")
    loaded = argen.load(folder, device="cpu")
    assert type(loaded).__name__ == "LlamaGenT2IPipeline"
    a, b = loaded("a red apple", n=2, seed=0)
    assert a.pixels.shape == (8, 8, 3) and a.metadata["family"] == "llamagen_t2i"
    assert (a.metadata["sampling"]["cfg_scale"], a.metadata["sampling"]["top_k"]) == (7.5, 1000)
    out = tmp_path / "apple.png"
    assert main(["image", "--model", folder, "-p", "a red apple", "--seed", "1", "-o", str(out), "-q"]) == 0, \
        capsys.readouterr().err
    from PIL import Image

    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), b.pixels)  # the batch's row 1 is seed 1 alone
    neg, = loaded("a red apple", seed=1, negative_prompt="a green pear", temperature=0)
    plain, = loaded("a red apple", seed=1, temperature=0)
    assert not np.array_equal(neg.pixels, plain.pixels)
    code = main(["image", "--model", folder, "-p", " ".join(["word"] * 200), "-o", str(tmp_path / "long.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and "is longer than the 120 T5 tokens" in err[0], err
    assert not (tmp_path / "long.png").exists()
