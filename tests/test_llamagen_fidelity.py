"""LlamaGen's image tokenizer in argen against FoundationVision/LlamaGen's own code: code grids
decode to the same PNGs, byte for byte, as the reference's ``vq_model.decode_code`` followed by
the uint8 conversion of ``autoregressive/sample/sample_c2i_ddp.py`` (their digests are in
tests/fixtures/llamagen/, made by the script its README names); and what ``--cfg`` means for
LlamaGen and the shapes models.

The fixture tokenizer is the reference's ``VQModel`` with its ``Encoder`` and ``Decoder`` built at
``ch`` 32 (``ModelArgs`` fixes 128; GroupNorm(32) and two residual blocks as released),
``ch_mult [1, 4]``, ``z_channels`` 32 and a 96 x 8 codebook: 16 x 16 codes make a 32 x 32
image, and the attention blocks see all 256 positions at 128 channels. (At 256 channels the
attention scale 1/16 is a power of two, and scaled_dot_product_attention happens to round as
the reference does: such a fixture could not tell the two apart.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_var_fidelity import fill, float_digest, one_thread, png_digest, recorded

from argen.engine.sampling.processors import SamplingConfig, apply_cfg, guidance_scale
from argen.errors import ArgenError
from argen.modalities.image.guidance import GUIDANCE, describe_guidance
from argen.modalities.image.llamagen.vq import LlamaGenVQ, LlamaGenVQConfig, indices_to_images, to_uint8

torch.set_num_threads(1)

FIXTURES = Path(__file__).parent / "fixtures" / "llamagen"
GRID = 16


def vq_config() -> LlamaGenVQConfig:
    return LlamaGenVQConfig(codebook_size=96, codebook_dim=8, ch=32, encoder_ch_mult=[1, 4], decoder_ch_mult=[1, 4],
                            z_channels=32, num_res_blocks=2, norm_groups=32)


def fixture_vq() -> LlamaGenVQ:
    return fill(LlamaGenVQ(vq_config()), 2)


@pytest.fixture(scope="module")
def record():
    return json.loads((FIXTURES / "reference.json").read_text())


def test_decoded_pngs_equal_the_reference(record, tmp_path):
    want = recorded(record)
    vq = fixture_vq()
    codes = torch.tensor(record["codes"]).view(-1, GRID, GRID)  # (B, 16, 16), decoded as one batch like the reference
    with one_thread(), torch.inference_mode():
        x = vq.decode(codes)  # (B, 3, 32, 32)
        images = indices_to_images(vq, codes)
    # the float32 decoder output itself, bit for bit (the reference's two-bmm attention, x * sigmoid(x))
    assert float_digest(x) == want["float32"], "the decoder's output differs from the reference's"
    assert np.array_equal(images, to_uint8(x))
    for i, png in enumerate(want["pngs"]):
        assert png_digest(images[i], tmp_path / f"{i}.png") == png, f"image {i}: PNG pixels differ"


def test_uint8_conversion_rounds_like_the_ddp_script():
    # clamp(127.5 x + 128, 0, 255) then truncation: -1 -> 0 (0.5), 1 -> 255, out-of-range clamps;
    # -0.8 (float32) gives 26.00000x here, where round((x + 1) * 127.5) gives 25
    x = torch.tensor([-1.0, 1.0, 0.0, -1.2, 1.3, 0.5, -0.8]).view(1, 1, 1, 7).expand(1, 3, 1, 7)
    assert to_uint8(x)[0, 0, :, 0].tolist() == [0, 255, 128, 0, 255, 191, 26]


def test_llamagen_and_shapes_guidance_help():
    for family in ("llamagen", "shapes", None):
        text = describe_guidance(family)
        assert "--cfg 1 disables guidance" in text and "--cfg 0 samples the unconditional" in text
    for key in ("llamagen", "shapes"):
        g = GUIDANCE[key]
        assert not SamplingConfig(cfg_scale=g.unguided, cfg_schedule=g.schedule).guided
        # the unconditional scale returns the unconditional logits, at every step
        cond, uncond = torch.randn(2, 8), torch.randn(2, 8)
        for progress in (0.0, 0.5, 1.0):
            w = guidance_scale(g.unconditional, g.schedule, progress)
            assert torch.equal(apply_cfg(cond, uncond, w), uncond)
    with pytest.raises(ArgenError, match="no guidance description"):
        describe_guidance("crystallm")
