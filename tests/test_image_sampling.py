"""The image samplers on tiny random models: token layout, CFG, inpainting, caching."""

import numpy as np
import pytest
import torch

from argen.engine.sampling.processors import SamplingConfig
from argen.lab.data.shapes import VOCABULARY
from argen.modalities.image.layout import ImageLayout
from argen.modalities.image.pipeline import ImagePipeline

PROMPT = "a red circle in the top left"


@pytest.fixture(scope="module", params=["next-scale", "next-token", "next-scale-features",
                                                 "next-scale-raster"])
def pipe(request, image_model_dirs):
    return ImagePipeline.from_pretrained(str(image_model_dirs[request.param]), device="cpu")


def test_next_scale_layout():
    lay = ImageLayout(words=list(VOCABULARY), codebook_size=16, scales=[1, 2, 4], prefix_len=12)
    assert lay.num_tokens == 21 and lay.seq_len == 33
    assert lay.transformer_fields()["block_sizes"] == [1, 4, 16]
    tokens = torch.arange(21)[None]  # scale 1: [0]; scale 2: 1..4; scale 4: 5..20
    x = lay.inputs(tokens)
    assert x.shape == (1, 21)
    assert x[0, 0] == lay.bos
    assert x[0, 1:5].tolist() == [0, 0, 0, 0]  # the 1x1 code, upsampled to 2x2
    # the 2x2 codes [[1, 2], [3, 4]] upsampled to 4x4: each covers a 2x2 patch
    assert x[0, 5:].view(4, 4).tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    raster = ImageLayout(words=list(VOCABULARY), codebook_size=16, scales=[4])
    assert raster.inputs(torch.arange(16)[None])[0].tolist() == [raster.bos] + list(range(15))
    # every id has its own slot: codes, BOS, words, PAD, NULL
    ids = lay.caption_ids(PROMPT)
    assert len(ids) == 12 and ids[-1] == lay.pad and lay.bos < min(ids) and lay.null == lay.vocab_size - 1


def test_raster_scales_layout():
    """With raster_scales 3 the 1x1, 2x2 and 4x4 codes (21 tokens) go one by one, each read by the
    next; the 8x8 scale reads the 4x4 codes upsampled, in one block."""
    lay = ImageLayout(words=list(VOCABULARY), codebook_size=100, scales=[1, 2, 4, 8], raster_scales=3)
    assert lay.num_raster == 21 and lay.num_tokens == 85
    assert lay.transformer_fields()["block_sizes"] == [1] * 21 + [64]
    tokens = torch.arange(85)[None]
    x = lay.inputs(tokens)
    assert x.shape == (1, 85)
    assert x[0, :21].tolist() == [lay.bos] + list(range(20))  # BOS, then the raster tokens shifted by one
    four = torch.arange(5, 21).view(4, 4)  # the 4x4 scale's codes
    assert x[0, 21:].view(8, 8).tolist() == four.repeat_interleave(2, 0).repeat_interleave(2, 1).tolist()
    assert torch.equal(lay.inputs(tokens[:, :21]), x[:, :21])  # the raster part alone reads the same inputs
    # raster_scales 1 is plain VAR: a 1x1 scale is one token either way
    one = ImageLayout(words=list(VOCABULARY), codebook_size=100, scales=[1, 2, 4, 8], raster_scales=1)
    var = ImageLayout(words=list(VOCABULARY), codebook_size=100, scales=[1, 2, 4, 8])
    assert one.transformer_fields() == var.transformer_fields() and torch.equal(one.inputs(tokens), var.inputs(tokens))
    with pytest.raises(ValueError, match="below the number of scales"):
        ImageLayout(words=list(VOCABULARY), codebook_size=100, scales=[1, 2, 4, 8], raster_scales=4)
    with pytest.raises(ValueError, match="cannot be combined"):
        ImageLayout(words=list(VOCABULARY), codebook_size=100, scales=[1, 2, 4, 8], raster_scales=2, feature_dim=8)


def test_greedy_sampling_agrees_with_the_teacher_forced_pass(pipe):
    """The sampler feeds the inputs the model trains on (``ImageLayout.inputs`` under the
    backbone's block mask): greedy tokens are the argmax of one teacher-forced pass over them."""
    lay = pipe.layout
    if lay.feature_dim:
        pytest.skip("feature inputs come from the tokenizer; test_feature_inputs_match_between_training_and_sampling")
    cond = pipe.check_prompt(PROMPT)
    tokens = pipe.sample_tokens([cond], [0], SamplingConfig(temperature=0))
    x = torch.cat([torch.tensor([cond]), lay.inputs(tokens)], dim=1)
    with torch.no_grad():
        logits = pipe.model(x)[:, lay.prefix_len:, :lay.codebook_size]
    assert torch.equal(logits.argmax(-1), tokens)
    assert len(set(tokens[0].tolist())) > 3  # not one token everywhere: the check has something to compare


def test_cfg_scale_zero_is_the_unconditional_model(pipe):
    lay = pipe.layout
    seeds = [3, 4]
    cond = pipe.check_prompt(PROMPT)
    guided = pipe.sample_tokens([cond] * 2, seeds, SamplingConfig(cfg_scale=0.0))
    uncond = pipe.sample_tokens([lay.null_ids()] * 2, seeds, SamplingConfig(cfg_scale=1.0))
    plain = pipe.sample_tokens([cond] * 2, seeds, SamplingConfig(cfg_scale=1.0))
    assert torch.equal(guided, uncond)
    assert not torch.equal(plain, uncond)  # the caption does change the samples


def test_cfg_changes_the_distribution(pipe):
    cond = pipe.check_prompt(PROMPT)
    a = pipe.sample_tokens([cond], [0], SamplingConfig(cfg_scale=1.0))
    b = pipe.sample_tokens([cond], [0], SamplingConfig(cfg_scale=5.0))
    assert not torch.equal(a, b)


def test_cached_equals_uncached(pipe):
    cond = pipe.check_prompt(PROMPT)
    for sampling in (SamplingConfig(cfg_scale=3.0), SamplingConfig(cfg_scale=2.0, cfg_schedule="linear", top_k=5)):
        cached = pipe.sample_tokens([cond] * 2, [0, 1], sampling, use_cache=True)
        full = pipe.sample_tokens([cond] * 2, [0, 1], sampling, use_cache=False)
        assert torch.equal(cached, full)


def test_batch_rows_equal_single_rows(pipe):
    cond = pipe.check_prompt(PROMPT)
    both = pipe.sample_tokens([cond] * 2, [5, 6], SamplingConfig())
    alone = pipe.sample_tokens([cond], [6], SamplingConfig())
    assert torch.equal(both[1:], alone)


def test_inpainting_keeps_the_tokens_outside_the_mask(pipe):
    from argen.lab.data.shapes import sample

    image = np.asarray(sample(0, 1)[1])
    mask = np.zeros((64, 64), dtype=bool)
    mask[8:30, 30:60] = True  # a box in the top right
    forced = pipe.forced_tokens(image, mask)
    original = pipe.tokenizer.encode(torch.tensor(image).permute(2, 0, 1)[None].float() / 127.5 - 1)[0]
    keep = forced >= 0
    assert 0 < int(keep.sum()) < len(forced)
    # at the finest scale, exactly the patches that touch the mask are regenerated
    fine = forced[-64:].view(8, 8)
    assert (fine[1:4, 3:8] == -1).all() and (fine[4:, :] >= 0).all() and (fine[:, :3] >= 0).all()
    for seed in (0, 1):
        tokens = pipe.sample_tokens([pipe.check_prompt(PROMPT)], [seed], SamplingConfig(), forced=forced)[0]
        assert torch.equal(tokens[keep], original[keep])
    # an empty mask reproduces the image's own tokens; a full one regenerates everything
    assert (pipe.forced_tokens(image, np.zeros((64, 64), bool)) == original).all()
    assert (pipe.forced_tokens(image, np.ones((64, 64), bool)) == -1).all()


def test_same_seed_same_image_different_seed_different_image(pipe):
    a = pipe(PROMPT, n=2, seed=10)
    b = pipe(PROMPT, n=1, seed=10)
    assert np.array_equal(a[0].pixels, b[0].pixels)
    assert not np.array_equal(a[0].pixels, a[1].pixels)
    assert a[0].pixels.shape == (64, 64, 3) and a[0].pixels.dtype == np.uint8
    assert a[0].image.size == (64, 64)  # the API's PIL image


def test_feature_inputs_match_between_training_and_sampling(image_model_dirs):
    """The teacher-forcing features a feature model trains on are the ones the sampler builds
    scale by scale, and they depend on every coarser scale (not only the previous one)."""
    pipe = ImagePipeline.from_pretrained(str(image_model_dirs["next-scale-features"]), device="cpu")
    lay, tok = pipe.layout, pipe.tokenizer
    assert lay.feature_dim == tok.cfg.latent_dim and pipe.model.feature_in is not None
    with pytest.raises(ValueError, match="tokenizer"):
        lay.inputs(torch.zeros(1, lay.num_tokens, dtype=torch.long))  # code inputs would silently be wrong
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, lay.codebook_size, (3, lay.num_tokens), generator=gen)
    teacher = tok.scale_inputs(tokens)  # (3, L - 1, C)
    assert teacher.shape == (3, lay.num_tokens - 1, lay.feature_dim)
    step = pipe._next_inputs(3)
    grids = tok.split(tokens)
    stepped = torch.cat([step(k, g) for k, g in enumerate(grids[:-1])], dim=1)
    torch.testing.assert_close(stepped, teacher)
    other = tokens.clone()
    other[:, 0] = (other[:, 0] + 1) % lay.codebook_size  # change only the 1x1 scale
    changed = tok.scale_inputs(other)
    assert not torch.allclose(changed[:, -64:], teacher[:, -64:])  # the finest scale's inputs still see it
