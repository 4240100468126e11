"""LlamaGen (class-conditional GPT + VQ-16 tokenizer) on argen's engine.

Checkpoints in the official key layout are written by the tests themselves (random weights,
``torch.save({"model": state_dict})``, as LlamaGen's training scripts save them). The GPT is
checked against a small re-statement of the reference forward pass written here from
FoundationVision/LlamaGen ``autoregressive/models/gpt.py`` (fused wqkv, interleaved RoPE pairs,
2D RoPE table with zeros for the class token), so the weight mapping is tested, not assumed.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from argen.checkpoints.argen_format import build_model
from argen.engine.rope import apply_rope, rope_grid_cos_sin
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.transformer import Transformer
from argen.errors import ArgenError
from argen.modalities.image.llamagen.convert import convert_llamagen, load_llamagen_dir, load_llamagen_gpt, load_llamagen_vq
from argen.modalities.image.llamagen.gpt import ffn_width, from_llamagen_state, llamagen_config
from argen.modalities.image.llamagen.sampling import cfg_tokens_from_interval, sample_llamagen, sample_llamagen_tokens
from argen.modalities.image.llamagen.vq import LlamaGenVQ, LlamaGenVQConfig, indices_to_images

torch.set_num_threads(1)

# a tiny GPT: 2 layers, 4 heads of 16, a 4x4 token grid (image 64 px with VQ-16), 96 codes, 10 classes
DIM, LAYERS, HEADS, GRID, VOCAB, CLASSES = 64, 2, 4, 4, 96, 10
SMALL_VQ = LlamaGenVQConfig(codebook_size=VOCAB, ch=32, encoder_ch_mult=[1, 2], decoder_ch_mult=[1, 2],
                            z_channels=32, norm_groups=8)


def small_cfg():
    return llamagen_config("tiny", GRID * 16, vocab_size=VOCAB, num_classes=CLASSES, size=(LAYERS, HEADS, DIM))


def official_gpt_state(seed: int = 0, layers: int = LAYERS, dim: int = DIM, vocab: int = VOCAB,
                       classes: int = CLASSES, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Random weights under the reference's names and shapes."""
    g = torch.Generator().manual_seed(seed)
    ff = ffn_width(dim)

    def w(*shape, scale=0.3):
        if device == "meta":
            return torch.empty(shape, device="meta")
        return torch.randn(shape, generator=g) * scale

    sd = {"tok_embeddings.weight": w(vocab, dim, scale=1.0),
          "cls_embedding.embedding_table.weight": w(classes + 1, dim, scale=1.0),
          "norm.weight": 1 + w(dim, scale=0.2), "output.weight": w(vocab, dim)}
    for i in range(layers):
        sd.update({f"layers.{i}.attention.wqkv.weight": w(3 * dim, dim), f"layers.{i}.attention.wo.weight": w(dim, dim),
                   f"layers.{i}.feed_forward.w1.weight": w(ff, dim), f"layers.{i}.feed_forward.w3.weight": w(ff, dim),
                   f"layers.{i}.feed_forward.w2.weight": w(dim, ff, scale=0.1),
                   f"layers.{i}.attention_norm.weight": 1 + w(dim, scale=0.2),
                   f"layers.{i}.ffn_norm.weight": 1 + w(dim, scale=0.2)})
    return sd


def reference_logits(sd: dict[str, torch.Tensor], labels: torch.Tensor, toks: torch.Tensor) -> torch.Tensor:
    """LlamaGen's forward pass (eval) restated: class token then image tokens -> logits (B, 1+T, V)."""
    hd = DIM // HEADS
    freqs = 1.0 / (10000 ** (torch.arange(0, hd // 2, 2).float() / (hd // 2)))  # (hd/4,)
    t = torch.arange(GRID).float()
    rows = torch.outer(t, freqs)[:, None].expand(GRID, GRID, -1)
    cols = torch.outer(t, freqs)[None].expand(GRID, GRID, -1)
    ang = torch.cat([rows, cols], -1).flatten(0, 1)  # (T, hd/2): row pairs first, then column pairs
    rot = torch.polar(torch.ones_like(ang), ang)
    rot = torch.cat([torch.zeros(1, hd // 2, dtype=rot.dtype), rot])  # the class token's entry is 0

    def rope(x):  # (B, S, H, hd), pairs (x[2j], x[2j+1]) as complex numbers
        xc = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * rot[None, :, None]).flatten(3)

    def rms(x, wt):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * wt

    h = torch.cat([sd["cls_embedding.embedding_table.weight"][labels][:, None], sd["tok_embeddings.weight"][toks]], 1)
    b, s, _ = h.shape
    for i in range(LAYERS):
        p = f"layers.{i}."
        q, k, v = (rms(h, sd[p + "attention_norm.weight"]) @ sd[p + "attention.wqkv.weight"].t()).split(DIM, -1)
        q, k, v = rope(q.view(b, s, HEADS, hd)), rope(k.view(b, s, HEADS, hd)), v.view(b, s, HEADS, hd)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        h = h + y.transpose(1, 2).reshape(b, s, DIM) @ sd[p + "attention.wo.weight"].t()
        x = rms(h, sd[p + "ffn_norm.weight"])
        ff = F.silu(x @ sd[p + "feed_forward.w1.weight"].t()) * (x @ sd[p + "feed_forward.w3.weight"].t())
        h = h + ff @ sd[p + "feed_forward.w2.weight"].t()
    return rms(h, sd["norm.weight"]) @ sd["output.weight"].t()


def class_ids(labels: torch.Tensor, toks: torch.Tensor) -> torch.Tensor:
    return torch.cat([VOCAB + labels[:, None], toks], 1)  # (B, 1 + T)


@pytest.fixture(scope="module")
def gpt() -> Transformer:
    cfg = small_cfg()
    return build_model(cfg, from_llamagen_state(official_gpt_state(), cfg), "test")


@pytest.fixture(scope="module")
def official_files(tmp_path_factory):
    """(vq.pt, gpt.pt, the VQ module they hold) in the official layout."""
    d = tmp_path_factory.mktemp("llamagen")
    torch.manual_seed(0)
    vq = LlamaGenVQ(SMALL_VQ).eval()
    vq_state = {**vq.state_dict(), "quantize.codebook_used": torch.zeros(65536)}
    torch.save({"model": vq_state, "steps": 5}, d / "vq.pt")
    torch.save({"model": official_gpt_state(), "steps": 5}, d / "gpt.pt")
    return d / "vq.pt", d / "gpt.pt", vq


# ----------------------------------------------------------------------------- (i) shapes, counts


def test_gpt_b_256_keys_shapes_and_published_count():
    """Every official GPT-B weight maps onto one argen weight of the right shape, and the total is
    the published 110.89M. The figure counts every trainable parameter: token embeddings
    (16384 x 768), the class table with its null row (1001 x 768), the 12 blocks (fused wqkv,
    wo, SwiGLU of width 2048, two RMSNorms), the final norm and the untied output layer; the 2D
    RoPE table is not a parameter. README rounds it to 111M."""
    cfg = llamagen_config("gpt-b", 256)
    assert (cfg.d_ff, cfg.rope_grid, cfg.max_seq_len, cfg.cond_vocab) == (2048, 16, 257, 1001)
    with torch.device("meta"):
        model = Transformer(cfg)
    official = official_gpt_state(layers=12, dim=768, vocab=16384, classes=1000, device="meta")
    mapped = {k: v.shape for k, v in from_llamagen_state(official, cfg).items()}
    assert mapped == {k: v.shape for k, v in model.state_dict().items()}
    assert sum(v.numel() for v in official.values()) == model.num_params() == cfg.num_params() == 110_888_448
    # the README's 343M and 775M, counted the same way
    assert llamagen_config("gpt-l", 256).num_params() == 342_910_976
    assert llamagen_config("gpt-xl", 384).num_params() == 774_699_520
    assert (llamagen_config("gpt-xl", 384).rope_grid, llamagen_config("gpt-xl", 384).d_ff) == (24, 3584)


def test_vq16_shapes_and_published_count():
    """VQ-16's 71.88M (README: 72M) counts the parameters of encoder, decoder, codebook and the two
    1x1 convs; the reference's 65536-entry codebook-usage buffer is not a parameter."""
    with torch.device("meta"):
        vq = LlamaGenVQ()
    shapes = {k: tuple(v.shape) for k, v in vq.state_dict().items()}
    assert sum(p.numel() for p in vq.parameters()) == 71_883_403
    assert shapes["quantize.embedding.weight"] == (16384, 8)
    assert shapes["quant_conv.weight"] == (8, 256, 1, 1) and shapes["post_quant_conv.weight"] == (256, 8, 1, 1)
    assert shapes["encoder.conv_blocks.4.attn.1.q.weight"] == (512, 512, 1, 1)
    assert shapes["encoder.conv_blocks.2.res.0.nin_shortcut.weight"] == (256, 128, 1, 1)
    assert shapes["encoder.conv_blocks.3.downsample.conv.weight"] == (256, 256, 3, 3)
    assert shapes["decoder.conv_blocks.0.res.2.conv2.weight"] == (512, 512, 3, 3)
    assert shapes["decoder.conv_blocks.3.upsample.conv.weight"] == (128, 128, 3, 3)
    assert "encoder.conv_blocks.4.downsample.conv.weight" not in shapes
    assert "decoder.conv_blocks.4.upsample.conv.weight" not in shapes
    assert shapes["decoder.mid.1.proj_out.weight"] == (512, 512, 1, 1)
    assert shapes["decoder.conv_out.weight"] == (3, 128, 3, 3)


# ----------------------------------------------------------------------------- (ii) loading, conversion


def test_official_gpt_matches_the_reference_forward(official_files):
    _, gpt_pt, _ = official_files
    model = load_llamagen_gpt(gpt_pt, cfg=small_cfg())
    labels, toks = torch.tensor([0, 3, CLASSES]), torch.randint(VOCAB, (3, GRID * GRID))
    with torch.no_grad():
        ours = model(class_ids(labels, toks))
    ref = reference_logits(official_gpt_state(), labels, toks)
    assert ours.shape == (3, 1 + GRID * GRID, VOCAB)
    assert (ours - ref).abs().max() < 1e-4 * ref.abs().max()


def test_strict_keys_wrappers_and_pickle_refusal(tmp_path):
    sd = official_gpt_state()
    for wrapper in ("model", "module", "state_dict", None):
        path = tmp_path / f"{wrapper}.pt"
        torch.save(sd if wrapper is None else {wrapper: sd}, path)
        load_llamagen_gpt(path, cfg=small_cfg())
    for bad in ({**sd, "layers.0.attention.bias": torch.zeros(DIM)},
                {k: v for k, v in sd.items() if k != "layers.1.ffn_norm.weight"}):
        torch.save({"model": bad}, tmp_path / "bad.pt")
        with pytest.raises(ArgenError):
            load_llamagen_gpt(tmp_path / "bad.pt", cfg=small_cfg())
    torch.save({"model": sd, "args": argparse.Namespace(lr=1e-4)}, tmp_path / "pickled.pt")
    with pytest.raises(ArgenError, match="refused to load"):
        load_llamagen_gpt(tmp_path / "pickled.pt", cfg=small_cfg())
    with pytest.raises(ArgenError, match="image size"):
        load_llamagen_gpt(tmp_path / "model.pt")


def test_official_vq_loads_strictly(official_files, tmp_path):
    vq_pt, _, vq = official_files
    loaded = load_llamagen_vq(vq_pt, SMALL_VQ)
    idx = torch.randint(VOCAB, (2, 3, 5))
    with torch.no_grad():
        assert torch.equal(loaded.decode(idx), vq.decode(idx))
        x = torch.rand(2, 3, 12, 20) * 2 - 1
        assert torch.equal(loaded.encode(x), vq.encode(x))
    state = torch.load(vq_pt, weights_only=True)["model"]
    state.pop("decoder.conv_out.bias")
    torch.save({"model": state}, tmp_path / "broken.pt")
    with pytest.raises(ArgenError):
        load_llamagen_vq(tmp_path / "broken.pt", SMALL_VQ)


def test_conversion_round_trips_to_identical_outputs(official_files, tmp_path):
    vq_pt, gpt_pt, _ = official_files
    out = convert_llamagen(vq_pt, gpt_pt, tmp_path / "converted", cfg=small_cfg(), vq_cfg=SMALL_VQ)
    assert (out / "model.safetensors").is_file() and (out / "tokenizer" / "model.safetensors").is_file()
    vq2, gpt2, meta = load_llamagen_dir(out)
    gpt1, vq1 = load_llamagen_gpt(gpt_pt, cfg=small_cfg()), load_llamagen_vq(vq_pt, SMALL_VQ)
    source = meta["llamagen"]["source"]
    assert source["gpt"]["file"] == "gpt.pt" and len(source["vq"]["sha256"]) == 64
    ids = class_ids(torch.tensor([1, 2]), torch.randint(VOCAB, (2, GRID * GRID)))
    idx = torch.randint(VOCAB, (2, GRID, GRID))
    with torch.no_grad():
        assert torch.equal(gpt1(ids), gpt2(ids))
        assert torch.equal(vq1.decode(idx), vq2.decode(idx))


# ----------------------------------------------------------------------------- (iii, iv) sampling


def test_cached_sampling_equals_uncached(gpt):
    for s in (SamplingConfig(temperature=0), SamplingConfig(temperature=0, cfg_scale=3.0, cfg_tokens=5)):
        a = sample_llamagen_tokens(gpt, [1, 4, 9], s, use_cache=True)
        b = sample_llamagen_tokens(gpt, [1, 4, 9], s, use_cache=False)
        assert a.shape == (3, GRID, GRID) and torch.equal(a, b)


def test_cfg_scale_one_is_the_conditional_model(gpt):
    labels = torch.tensor([2, 7])
    toks = torch.zeros(2, 0, dtype=torch.long)
    with torch.no_grad():  # a plain greedy loop over full forward passes of the conditional rows
        for _ in range(GRID * GRID):
            toks = torch.cat([toks, gpt(class_ids(labels, toks))[:, -1].argmax(-1, keepdim=True)], 1)
    one = sample_llamagen_tokens(gpt, labels.tolist(), SamplingConfig(temperature=0, cfg_scale=1.0))
    assert torch.equal(one.flatten(1), toks)
    # guidance switched off from the first token on is the conditional model too
    off = sample_llamagen_tokens(gpt, labels.tolist(), SamplingConfig(temperature=0, cfg_scale=4.0, cfg_tokens=0))
    assert torch.equal(off, one)
    guided = sample_llamagen_tokens(gpt, labels.tolist(), SamplingConfig(temperature=0, cfg_scale=4.0))
    assert not torch.equal(guided, one)
    first = sample_llamagen_tokens(gpt, labels.tolist(), SamplingConfig(temperature=0, cfg_scale=4.0, cfg_tokens=3))
    assert torch.equal(first.flatten(1)[:, :3], guided.flatten(1)[:, :3])


def test_cfg_interval_translation():
    # generate.py: prefill is guided; decode step i (token i + 1) while i <= cfg_interval
    assert cfg_tokens_from_interval(-1) is None
    assert cfg_tokens_from_interval(0) == 2 and cfg_tokens_from_interval(0.5) == 2
    assert cfg_tokens_from_interval(-0.5) == 1 and cfg_tokens_from_interval(10) == 12


def test_sample_images_are_uint8_and_seeded(gpt, official_files):
    vq = load_llamagen_vq(official_files[0], SMALL_VQ)
    s = SamplingConfig(temperature=1.0, top_k=20, cfg_scale=2.0)
    a = sample_llamagen(vq, gpt, [3, 3], s, seed=7)
    b = sample_llamagen(vq, gpt, [3], s, seed=7)
    assert a.dtype == np.uint8 and a.shape == (2, GRID * 2, GRID * 2, 3)  # SMALL_VQ downsamples by 2
    assert np.array_equal(a[:1], b) and not np.array_equal(a[0], a[1])
    tokens = sample_llamagen_tokens(gpt, [3], s, seed=7)
    assert np.array_equal(indices_to_images(vq, tokens), b)


# ----------------------------------------------------------------------------- (v) 2D RoPE


def test_2d_rope_class_token_and_grid_angles(gpt):
    hd = DIM // HEADS
    pos = torch.arange(1 + GRID * GRID)[None]
    cos, sin = gpt.rope(pos, torch.float32)  # (1, 1, T, hd), half-split layout
    assert torch.all(cos[0, 0, 0] == 0) and torch.all(sin[0, 0, 0] == 0)  # LlamaGen: class q/k zeroed
    freqs = 1.0 / (10000 ** (torch.arange(0, hd // 2, 2).float() / (hd // 2)))
    for p in range(1, 1 + GRID * GRID):
        r, c = divmod(p - 1, GRID)
        ang = torch.cat([r * freqs, c * freqs])
        assert torch.allclose(cos[0, 0, p], torch.cat([ang, ang]).cos(), atol=1e-6)
        assert torch.allclose(sin[0, 0, p], torch.cat([ang, ang]).sin(), atol=1e-6)
    icos, isin = rope_grid_cos_sin(pos, gpt.inv_freq, GRID, 1, "identity", torch.float32)
    assert torch.all(icos[0, 0, 0] == 1) and torch.all(isin[0, 0, 0] == 0)  # "identity": unrotated


def test_2d_rope_scores_depend_on_the_grid_offset_only(gpt):
    hd = DIM // HEADS
    q, k = torch.randn(1, 1, 1, hd), torch.randn(1, 1, 1, hd)

    def score(a, b):  # grid cells (row, col) of query and key
        pa, pb = (torch.tensor([[1 + a[0] * GRID + a[1]]]), torch.tensor([[1 + b[0] * GRID + b[1]]]))
        return (apply_rope(q, *gpt.rope(pa, torch.float32)) * apply_rope(k, *gpt.rope(pb, torch.float32))).sum()

    assert torch.allclose(score((2, 3), (1, 1)), score((3, 2), (2, 0)), atol=1e-5)  # same (1, 2) offset
    assert not torch.allclose(score((2, 3), (1, 1)), score((2, 3), (1, 2)), atol=1e-3)  # another column
    assert not torch.allclose(score((2, 3), (1, 1)), score((3, 3), (1, 1)), atol=1e-3)  # another row
