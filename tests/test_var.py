"""VAR (FoundationVision/VAR) in argen: the released key layout and sizes, checkpoint loading
and conversion, the next-scale loop with VAR's features and CFG ramp, and the quantiser."""

import pytest
import torch

from argen.engine.sampling.processors import SamplingConfig, guidance_scale
from argen.errors import ArgenError
from argen.modalities.image.var.convert import convert_var, load_var_dir, load_var_model, load_var_vae, var_config_from_state
from argen.modalities.image.var.model import VAR, VARConfig, var_config
from argen.modalities.image.var.sampling import sample_var, sample_var_codes
from argen.modalities.image.var.vqvae import VQVAE, VQVAEConfig

torch.set_num_threads(1)

SCALES = [1, 2, 3, 4]
LABELS = [1, 7, 10]  # 10 = the null class of a 10-class model


def tiny_vae_config() -> VQVAEConfig:
    return VQVAEConfig(vocab_size=64, z_channels=8, ch=32, ch_mult=[1, 2], num_res_blocks=1, patch_nums=SCALES)


def tiny_var_config() -> VARConfig:
    return VARConfig(depth=2, width=64, num_heads=4, num_classes=10, vocab_size=64, vae_channels=8, patch_nums=SCALES)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    vae = VQVAE(tiny_vae_config()).eval()
    var = VAR(tiny_var_config()).eval()
    with torch.no_grad():
        var.head.weight.mul_(20)  # peaked distributions: sampled grids differ clearly between settings
    return vae, var


def test_released_layout_and_parameter_counts():
    # Counted as the reference's "[INIT][#para]" printout does (train.py): parameters only, no
    # buffers (lvl_1L, attn_bias_for_masking, zero_k_bias, ema_vocab_hit_SV); the VAR count
    # excludes its VAE, which the reference holds outside its module tree. The paper/README
    # round these to 310M / 600M / 1.0B / 2.0B; the VAE's 108.95M is the printout's VAE total.
    with torch.device("meta"):
        var, vae = VAR(var_config(16)), VQVAE()
        assert [round(VAR(var_config(d)).num_params() / 1e6, 2) for d in (20, 24, 30)] == [600.92, 1033.40, 2010.02]
    assert round(var.num_params() / 1e6, 2) == 310.28
    assert round(vae.num_params() / 1e6, 2) == 108.95
    shapes = {k: tuple(v.shape) for k, v in var.state_dict().items()}
    assert len(shapes) == 16 * 13 + 12  # 13 entries per block, 12 outside
    assert shapes["blocks.0.attn.mat_qkv.weight"] == (3072, 1024)
    assert shapes["blocks.15.attn.scale_mul_1H11"] == (1, 16, 1, 1)
    assert shapes["blocks.3.attn.zero_k_bias"] == (1024,)
    assert shapes["blocks.0.ada_lin.1.weight"] == (6144, 1024)
    assert shapes["blocks.0.ffn.fc1.weight"] == (4096, 1024)
    assert shapes["class_emb.weight"] == (1001, 1024)
    assert shapes["pos_start"] == (1, 1, 1024) and shapes["pos_1LC"] == (1, 680, 1024)
    assert shapes["lvl_embed.weight"] == (10, 1024) and shapes["lvl_1L"] == (1, 680)
    assert shapes["attn_bias_for_masking"] == (1, 1, 680, 680)
    assert shapes["word_embed.weight"] == (1024, 32)
    assert shapes["head_nm.ada_lin.1.weight"] == (2048, 1024) and shapes["head.weight"] == (4096, 1024)
    vshapes = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    assert len(vshapes) == 324
    assert vshapes["quantize.embedding.weight"] == (4096, 32)
    assert vshapes["quantize.ema_vocab_hit_SV"] == (10, 4096)
    assert [vshapes[f"quantize.quant_resi.qresi_ls.{i}.weight"] for i in range(4)] == [(32, 32, 3, 3)] * 4
    assert vshapes["encoder.down.4.attn.1.qkv.weight"] == (1920, 640, 1, 1)
    assert vshapes["encoder.down.2.block.0.nin_shortcut.weight"] == (320, 160, 1, 1)
    assert vshapes["decoder.up.4.attn.2.proj_out.weight"] == (640, 640, 1, 1)
    assert vshapes["decoder.up.1.upsample.conv.weight"] == (160, 160, 3, 3)
    assert vshapes["quant_conv.weight"] == vshapes["post_quant_conv.weight"] == (32, 32, 3, 3)
    assert VQVAEConfig().image_size == 256
    # ticks 1/12, 13/36, 23/36, 11/12: scales 2 and 7 sit exactly between two ticks, and the
    # reference's numpy.linspace rounding sends them to phi 1 and phi 3
    assert [vae.quantize.quant_resi.index(k, 10) for k in range(10)] == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]


def test_official_layout_loads_strictly_and_converts(models, tmp_path):
    vae, var = models
    torch.save(vae.state_dict(), tmp_path / "vae.pth")
    torch.save(var.state_dict(), tmp_path / "var.pth")
    loaded = load_var_model(tmp_path / "var.pth", patch_nums=SCALES)
    assert loaded.cfg == var.cfg  # read off the shapes
    labels = torch.tensor([[3], [10]])
    x = torch.randn(2, sum(s * s for s in SCALES) - 1, 8)  # (B, L - 1, Cvae)
    want = var((labels, x))  # (B, L, V)
    assert torch.equal(loaded((labels, x)), want)
    out = convert_var(tmp_path / "vae.pth", tmp_path / "var.pth", tmp_path / "conv", vae_cfg=tiny_vae_config())
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "vae.safetensors"]
    vae2, var2, meta = load_var_dir(out)
    assert meta["family"] == "var" and set(meta["source"]) == {"vae.pth", "var.pth"}
    assert torch.equal(var2((labels, x)), want)
    grids = [torch.randint(0, 64, (1, s, s)) for s in SCALES]
    assert torch.equal(vae2.decode(grids), vae.decode(grids))
    # a missing key is a one-line error, not a traceback
    state = var.state_dict()
    state.pop("head.bias")
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ArgenError, match="missing"):
        load_var_model(tmp_path / "broken.pth", tiny_var_config())


class NotATensor:
    pass


def test_pickled_code_is_refused(tmp_path):
    torch.save({"w": torch.zeros(1), "obj": NotATensor()}, tmp_path / "evil.pth")
    with pytest.raises(ArgenError, match="refused"):
        load_var_vae(tmp_path / "evil.pth")
    with pytest.raises(ArgenError, match="not a VAR"):
        var_config_from_state({"w": torch.zeros(1)})


@pytest.mark.parametrize("sampling", [SamplingConfig(temperature=0),
                                      SamplingConfig(temperature=0, cfg_scale=3.0, cfg_schedule="var"),
                                      SamplingConfig(top_k=5, cfg_scale=1.5, cfg_schedule="var")])
def test_cached_equals_uncached(models, sampling):
    vae, var = models
    cached = sample_var_codes(vae, var, LABELS, sampling, seed=0)
    full = sample_var_codes(vae, var, LABELS, sampling, seed=0, use_cache=False)
    assert [g.shape for g in cached] == [(3, s, s) for s in SCALES]
    assert all(torch.equal(a, b) for a, b in zip(cached, full))


@torch.inference_mode()
def conditional_argmax(vae, var, labels, grids, cfg=0.0):
    """Each scale's argmax under teacher forcing with VAR's mix (1 + t) cond - t uncond."""
    x = vae.teacher_inputs(grids)  # (B, L - 1, Cvae)
    lab = torch.tensor(labels)[:, None]
    cond = var((lab, x))
    uncond = var((torch.full_like(lab, var.cfg.num_classes), x))
    out, o = [], 0
    for k, s in enumerate(SCALES):
        t = cfg * k / (len(SCALES) - 1)
        mixed = (1 + t) * cond[:, o:o + s * s] - t * uncond[:, o:o + s * s]
        out.append(mixed.argmax(-1).view(-1, s, s))
        o += s * s
    return out


def test_cfg_ramp_matches_var(models):
    vae, var = models
    labels = [1, 7]
    assert not SamplingConfig(cfg_scale=0.0, cfg_schedule="var").guided
    assert guidance_scale(2.0, "var", 0.0) == 1.0 and guidance_scale(2.0, "var", 1.0) == 3.0
    # t = 0 at every scale: the conditional model's own greedy choice
    plain = sample_var_codes(vae, var, labels, SamplingConfig(temperature=0, cfg_scale=0.0, cfg_schedule="var"))
    assert all(torch.equal(a, b) for a, b in zip(plain, conditional_argmax(vae, var, labels, plain)))
    assert all(torch.equal(a, b) for a, b in zip(plain, sample_var_codes(vae, var, labels, SamplingConfig(temperature=0))))
    # the ramp: t = 0 at the first scale, cfg at the last
    guided = sample_var_codes(vae, var, labels, SamplingConfig(temperature=0, cfg_scale=4.0, cfg_schedule="var"))
    assert all(torch.equal(a, b) for a, b in zip(guided, conditional_argmax(vae, var, labels, guided, cfg=4.0)))
    assert torch.equal(guided[0], plain[0])
    assert any(not torch.equal(a, b) for a, b in zip(guided, plain))


def test_quantiser_round_trip(models):
    vae, _ = models
    q = vae.quantize
    codes = torch.arange(64).view(1, 8, 8)
    assert torch.equal(q.nearest(q.embed(codes).permute(0, 2, 3, 1).reshape(-1, 8)).view(1, 8, 8), codes)
    torch.manual_seed(1)
    f = torch.randn(2, 8, 4, 4)  # (B, Cvae, p, p)
    grids = q.quantize(f)
    f_hat = q.to_fhat(grids)
    assert (f - f_hat).norm() < f.norm()  # the residual shrinks
    # the sampling step, scale by scale, builds the same f_hat and the teacher-forced inputs
    step, inputs = torch.zeros_like(f), []
    for k, g in enumerate(grids):
        step, nxt = q.next_step(k, step, g)
        inputs.append(nxt.flatten(2).transpose(1, 2))
    assert torch.allclose(step, f_hat, atol=1e-6)
    assert torch.allclose(torch.cat(inputs[:-1], 1), vae.teacher_inputs(grids), atol=1e-6)
    # indices -> f_hat -> indices: a residual quantiser re-encodes an arbitrary f_hat to other
    # grids (coarse scales see the fine detail averaged in), but it must return the grids whose
    # residual is exactly representable. With phi = identity and code 0 = the zero vector, a
    # code c at 1x1 and zeros elsewhere makes a constant f_hat: scale 0 takes c, and the rest
    # is then zero, so every finer scale takes code 0.
    import copy

    q = copy.deepcopy(q)
    with torch.no_grad():
        q.embedding.weight[0] = 0
        for phi in q.quant_resi.qresi_ls:
            phi.weight.zero_()
            phi.bias.zero_()
            phi.weight[:, :, 1, 1] = torch.eye(8)
    for c in (5, 63):
        grids = [torch.full((1, s, s), c if k == 0 else 0) for k, s in enumerate(SCALES)]
        assert all(torch.equal(a, b) for a, b in zip(q.quantize(q.to_fhat(grids)), grids))


def test_sample_var_images(models):
    vae, var = models
    images = sample_var(vae, var, [2, 3], seed=4)
    assert images.shape == (2, 8, 8, 3) and images.dtype.name == "uint8"
    assert (sample_var(vae, var, [3], seed=5) == images[1:]).all()  # row i uses seed + i
