"""VAR in argen against FoundationVision/VAR's own code: decoded and sampled images equal, byte
for byte, the PNGs that the reference wrote from the same weights (their digests are in
tests/fixtures/var/, made by the script its README names), ``more_smooth`` sampling, VAR's
guidance arithmetic, and what ``--cfg`` means for VAR models.

The fixture models are small random weights in the official layout: the reference's own VQVAE
(its hard-coded vq-f16 ``ddconfig`` at ``ch=32``) and a 2-block VAR. Their weights are drawn
here, parameter by parameter in name order, so the test and the recording script build the
same numbers without depending on module construction order.
"""

from __future__ import annotations

import functools
import hashlib
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from argen.engine.sampling.next_scale import smooth_weights
from argen.engine.sampling.processors import SamplingConfig, guidance_scale, guide
from argen.errors import UsageError
from argen.io.png import read_image, write_png
from argen.modalities.image.class_pipeline import ClassImagePipeline
from argen.modalities.image.guidance import GUIDANCE, describe_guidance
from argen.modalities.image.var.model import VAR, VARConfig
from argen.modalities.image.var.sampling import sample_var, sample_var_codes, to_uint8
from argen.modalities.image.var.vqvae import VQVAE, VQVAEConfig

torch.set_num_threads(1)

FIXTURES = Path(__file__).parent / "fixtures" / "var"
SCALES = [1, 2, 3, 4]  # 64 x 64 images with the reference's 16x downsampling


def fill(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random parameters, drawn in name order from one generator: matrices and kernels
    N(0, 1/fan_in), norm weights 1 + N(0, 0.01), other vectors N(0, 0.01). Buffers keep their
    values (VAR's level ids and block-causal mask)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        params = dict(module.named_parameters())
        for name in sorted(params):
            p = params[name]
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / float(np.prod(p.shape[1:])) ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return module.eval()


def vae_config() -> VQVAEConfig:
    return VQVAEConfig(vocab_size=64, z_channels=8, ch=32, patch_nums=SCALES)


def var_config() -> VARConfig:
    return VARConfig(depth=2, width=64, num_heads=4, num_classes=10, vocab_size=64, vae_channels=8, patch_nums=SCALES)


def fixture_models() -> tuple[VQVAE, VAR]:
    return fill(VQVAE(vae_config()), 0), fill(VAR(var_config()), 1)


def sampling_of(case: dict) -> SamplingConfig:
    """A recorded case's settings (VAR's argument names) as argen's SamplingConfig."""
    return SamplingConfig(cfg_scale=case["cfg"], cfg_schedule="var", top_k=case["top_k"] or None)


@pytest.fixture(scope="module")
def models():
    return fixture_models()


@pytest.fixture(scope="module")
def record():
    return json.loads((FIXTURES / "reference.json").read_text())


def png_digest(image: np.ndarray, path: Path) -> str:
    """sha256 of the pixels of the PNG that argen writes for ``image`` (H, W, 3) uint8."""
    return hashlib.sha256(np.asarray(read_image(write_png(path, image, {"test": True}))).tobytes()).hexdigest()


def float_digest(x: torch.Tensor) -> str:
    return hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()


@functools.cache
def kernel_fingerprint() -> str:
    """How this machine's CPU kernels round, on one thread: a digest of convolutions, matrix
    products, normalisations, softmax, activations and resampling of fixed inputs, at the
    fixtures' shapes. The same code rounds differently on another instruction set (AVX2 and
    AVX-512 kernels, oneDNN's and MKL's choices) or thread count, so a bit-exact record holds
    only where the fingerprint is the recording machine's."""
    g = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    outs = []
    with one_thread():
        for c, size in ((8, 4), (32, 64), (64, 16), (128, 32), (256, 16)):
            x = r(2, c, size, size)
            outs += [F.conv2d(x, r(c, c, 3, 3), r(c), padding=1), F.conv2d(x[:1], r(c, c, 3, 3), padding=1),
                     F.conv2d(x.to(memory_format=torch.channels_last), r(c, c, 3, 3), padding=1),
                     F.conv2d(x, r(c // 2, c, 1, 1), r(c // 2)),
                     F.conv2d(F.pad(x, (0, 1, 0, 1)), r(c, c, 3, 3), stride=2),
                     F.group_norm(x, 8 if c == 8 else 32, r(c), r(c), 1e-6), F.silu(x), x * torch.sigmoid(x),
                     F.interpolate(x, scale_factor=2, mode="nearest"), F.interpolate(x, size=(3, 3), mode="area")]
            if size <= 16:  # the attention's shapes (its pixels at the lowest resolution)
                q = x.flatten(2)  # (2, c, hw)
                outs += [torch.bmm(q.permute(0, 2, 1), q).mul_(c ** -0.5).softmax(2), torch.bmm(q, q.transpose(1, 2))]
        outs += [F.interpolate(r(1, 8, 3, 3), size=(4, 4), mode="bicubic"),
                 F.interpolate(r(1, 8, 3, 3).permute(0, 1, 3, 2), size=(4, 4), mode="bicubic")]
        for rows in (1, 2, 4):
            h = r(rows, 30, 64)
            outs += [F.linear(h, r(256, 64), r(256)), F.linear(h, r(64, 64)), F.layer_norm(h, (64,), eps=1e-6),
                     F.gelu(r(rows, 30, 256), approximate="tanh"), r(rows, 30, 64) @ r(1, 64, 8),
                     F.scaled_dot_product_attention(r(rows, 4, 30, 16), r(rows, 4, 30, 16), r(rows, 4, 30, 16)),
                     F.normalize(h, dim=-1), h.softmax(-1), h.exp(), h.abs().log()]
    digest = hashlib.sha256()
    for o in outs:
        digest.update(o.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@contextmanager
def one_thread():
    """The fixtures were recorded on one thread (the thread count changes the rounding too)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def recorded(record: dict) -> dict:
    """The reference's outputs recorded on a machine whose kernels round as this one's (else skip)."""
    fp = kernel_fingerprint()
    if fp not in record["platforms"]:
        pytest.skip(f"no reference record for this machine's kernels (fingerprint {fp}; recorded: "
                    f"{', '.join(record['platforms'])}); record one with tests/fixtures/record_image_references.py")
    return record["platforms"][fp]


# ----------------------------------------------------------------------------- the decoder


def test_decoded_pngs_equal_the_reference(models, record, tmp_path):
    vae, _ = models
    want = recorded(record)["decode"]
    for i, (codes, (f32, png)) in enumerate(zip(record["decode"], want)):
        grids = [torch.tensor(g).view(1, s, s) for g, s in zip(codes, SCALES)]
        with one_thread(), torch.inference_mode():
            x = vae.decode(grids)  # (1, 3, 64, 64) in [-1, 1]
        # the float32 decoder output itself, bit for bit (the reference's two-bmm attention)
        assert float_digest(x) == f32, f"case {i}: the decoder's output differs from the reference's"
        assert png_digest(to_uint8(x)[0], tmp_path / f"{i}.png") == png, f"case {i}: PNG pixels differ"


def test_uint8_conversion_truncates_like_the_reference():
    # demo_sample.ipynb: ((x + 1) * 0.5 * 255).astype(uint8): 254.99 -> 254, only x = 1 gives 255
    x = torch.tensor([-1.0, 1.0, 0.0, 0.99, -0.999]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert to_uint8(x)[0, 0, :, 0].tolist() == [0, 255, 127, 253, 0]


# ----------------------------------------------------------------------------- sampling


def test_sampled_pngs_equal_the_reference(models, record, tmp_path):
    """autoregressive_infer_cfg(B=1, ...) from the reference, its token draw swapped for argen's
    (see the fixture README); every other step is the reference's: guidance, top-k filtering,
    the Gumbel softmax of more_smooth, the f_hat updates, the decoder and the uint8 conversion."""
    vae, var = models
    for case, png in zip(record["sample"], recorded(record)["sample"]):
        with one_thread():
            img = sample_var(vae, var, [case["label"]], sampling_of(case), seed=case["seed"],
                             more_smooth=case["more_smooth"])
        assert png_digest(img[0], tmp_path / "x.png") == png, f"{case} differs from the reference"


def test_more_smooth_off_is_the_codes_decoded_and_on_is_seeded_per_row(models):
    vae, var = models
    s = SamplingConfig(cfg_scale=1.5, cfg_schedule="var", top_k=20)
    plain = sample_var(vae, var, [3, 5], s, seed=11)
    grids = sample_var_codes(vae, var, [3, 5], s, seed=11)
    with torch.inference_mode():
        assert np.array_equal(plain, to_uint8(torch.cat([vae.decode([g[i:i + 1] for g in grids]) for i in range(2)])))
    smooth = sample_var(vae, var, [3, 5], s, seed=11, more_smooth=True)
    assert not np.array_equal(smooth, plain)
    assert np.array_equal(smooth[1:], sample_var(vae, var, [5], s, seed=12, more_smooth=True))  # row i: seed + i


def test_more_smooth_is_a_published_option_of_var_pipelines(models):
    vae, var = models
    s = SamplingConfig(cfg_scale=1.5, cfg_schedule="var", top_k=20)
    pipe = ClassImagePipeline("var", vae, var, {})
    assert "more_smooth" in pipe.family.options and pipe.family.guidance is GUIDANCE["var"]
    flags = dict(cfg=1.5, cfg_schedule="var", top_k=20, temperature=1.0, top_p=1.0)
    outs = pipe("3", n=2, seed=5, more_smooth=True, **flags)
    assert np.array_equal(np.stack([o.pixels for o in outs]), sample_var(vae, var, [3, 3], s, seed=5, more_smooth=True))
    assert outs[1].metadata["more_smooth"] is True
    plain = pipe("3", n=1, seed=5, **flags)
    assert "more_smooth" not in plain[0].metadata  # off: the record is what it was
    assert np.array_equal(plain[0].pixels, sample_var(vae, var, [3], s, seed=5)[0])
    # another family refuses it (only the option check runs here)
    with pytest.raises(UsageError, match="option of VAR models"):
        ClassImagePipeline("llamagen", vae, var, {})("3", seed=0, more_smooth=True, **flags)


def test_more_smooth_needs_sampling(models):
    vae, var = models
    with pytest.raises(UsageError, match="more_smooth"):
        sample_var(vae, var, [1], SamplingConfig(temperature=0), seed=0, more_smooth=True)


def test_smooth_weights_follow_vars_gumbel_softmax():
    """The formula restated from models/var.py and models/helpers.py (gumbel_softmax_with_rng,
    hard=False) with one generator per row, on filtered logits (-inf = excluded)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 64, generator=g) * 3
    logits[..., 40:] = float("-inf")  # filtered out (top-k)
    for progress in (0.0, 1 / 3, 1.0):
        gens = [torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)]
        got = smooth_weights(logits, progress, gens)
        tau = max(0.27 * (1 - progress * 0.95), 0.005)
        want = []
        for row, seed in zip(logits, (7, 8)):
            e = torch.empty(5, 64).exponential_(generator=torch.Generator().manual_seed(seed))
            want.append(((row * (1 + progress) - e.log()) / tau).softmax(-1))
        assert torch.allclose(got, torch.stack(want), atol=1e-6, rtol=0)
        assert torch.all(got[..., 40:] == 0) and torch.allclose(got.sum(-1), torch.ones(2, 5))
    # the temperature anneals from 0.27 to 0.0135: late scales are nearly one code each
    assert max(0.27 * (1 - 0.95), 0.005) == pytest.approx(0.0135)


def test_var_guidance_is_vars_arithmetic():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 64, generator=g)  # (2B, n, V): conditional rows, then their twins
    for cfg, progress in ((1.5, 2 / 3), (4.0, 1.0), (1.0, 1 / 9)):
        t = cfg * progress
        want = (1 + t) * logits[:2] - t * logits[2:]
        assert torch.equal(guide(logits, 2, SamplingConfig(cfg_scale=cfg, cfg_schedule="var"), progress), want)


# ----------------------------------------------------------------------------- what --cfg means


def test_var_guidance_help_says_cfg_1_still_guides():
    text = describe_guidance("var")
    assert "--cfg 1 still guides" in text and "weight 2 at the last scale" in text
    assert "--cfg 0" in text and "unguided conditional" in text
    # the text's numbers are the engine's: VAR's ramp at cfg 1 ends at weight 2, cfg 0 never guides
    var = GUIDANCE["var"]
    assert guidance_scale(1.0, var.schedule, 1.0) == 2.0 and guidance_scale(1.0, var.schedule, 0.0) == 1.0
    assert not SamplingConfig(cfg_scale=var.unguided, cfg_schedule=var.schedule).guided
    assert SamplingConfig(cfg_scale=1.0, cfg_schedule=var.schedule).guided
