"""SkyReels-V2 diffusion forcing on argen's engine against diffusers' own pipeline, on tiny random
models saved in the official layouts (diffusers / transformers ``save_pretrained``)."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from argen.errors import ArgenError, UsageError
from argen.modalities.video.skyreels.config import WanConfig, matches
from argen.modalities.video.skyreels.convert import convert_state_dict
from argen.modalities.video.skyreels.pipeline import SkyReelsVideo
from argen.modalities.video.skyreels.tiny import build_tiny
from argen.modalities.video.skyreels.transformer import WanModel, count_params

pytest.importorskip("transformers")
diffusers = pytest.importorskip("diffusers")

H, W = 32, 48  # latent 4 x 6, tokens 2 x 3 per frame: rows and columns differ
TEXT_LEN = 16


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tensors are tiny: one thread avoids OpenMP's spinning on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder, ref = build_tiny(tmp_path_factory.mktemp("skyreels") / "df")
    pipe = SkyReelsVideo.from_pretrained(folder, device="cpu", dtype="float32")
    pipe.text.max_length = TEXT_LEN
    return folder, ref, pipe


@pytest.fixture
def no_ftfy(monkeypatch):
    """diffusers' prompt_clean calls ftfy unconditionally; it is not installed here and is the
    identity on these ASCII prompts."""
    import diffusers.pipelines.skyreels_v2.pipeline_skyreels_v2_diffusion_forcing_v2v as mod

    monkeypatch.setattr(mod, "ftfy", types.SimpleNamespace(fix_text=lambda s: s), raising=False)


def test_velocity_matches_diffusers(tiny):
    _, ref, pipe = tiny
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 6, H // 8, W // 8, generator=gen)
    ctx = torch.randn(1, TEXT_LEN, 32, generator=gen)
    t = torch.tensor([[0, 0, 417, 417, 999, 999]])  # a noise level per latent frame
    for block in (1, 2):  # full attention, and block-causal over pairs of frames
        ref.transformer._set_ar_attention(block)
        with torch.no_grad():
            want = ref.transformer(x, t, ctx, enable_diffusion_forcing=True, fps=[1], return_dict=False)[0]
            got = pipe.transformer(x, t.float(), pipe.transformer.text_context(ctx), block=block,
                                   fps=torch.tensor([1]))
        assert (got - want).abs().max() <= 1e-4, block
        assert want.abs().max() > 0.1  # not a trivially small output


def _clip(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, H, W, 3), dtype=np.uint8)


def test_extension_matches_diffusers_pipeline(tiny, no_ftfy):
    """Two windows (the second starts from the first's last 2 latent frames), causal blocks of 2
    latent frames, each block 2 steps behind the one before (ar_step), guidance 6: the latents
    after each block and the decoded frames equal diffusers' video-to-video pipeline's, with and
    without the cache."""
    from PIL import Image

    _, ref, pipe = tiny
    clip = _clip(9)
    steps, block, ar, overlap, window, frames = 4, 2, 2, 5, 21, 24
    seen = []
    ref.transformer._set_ar_attention(1)
    out = ref(video=[Image.fromarray(f) for f in clip], prompt="a red fox runs", negative_prompt="blue sky",
              height=H, width=W, num_frames=overlap + frames, num_inference_steps=steps, guidance_scale=6.0,
              generator=torch.Generator().manual_seed(7), max_sequence_length=TEXT_LEN, overlap_history=overlap,
              base_num_frames=window, ar_step=ar, causal_block_size=block, output_type="np",
              callback_on_step_end=lambda p, i, t, kw: seen.append(kw["latents"].clone()) or kw).frames[0]
    want_frames = out[len(clip):]  # diffusers returns the clip, then the decoded window (overlap included)
    # the windows' final latents: diffusers' accumulated video
    s = pipe.settings(steps=steps, cfg=6.0, block=block, ar_step=ar, window=window, overlap=overlap, addnoise=0.0,
                      negative_prompt="blue sky")
    plan = pipe.plan(frames, len(clip), s)
    assert [(w.start, w.frames, w.history) for w in plan.windows] == [(0, 6, 2), (4, 4, 2)]
    # window 1 takes 6 passes: block 1 steps in passes 1-4, block 2 (2 steps behind) in passes 3-6
    want_video = torch.cat([seen[5], seen[-1][:, :, 2:]], dim=2)
    history = pipe.vae.encode(clip[-overlap:])
    for cache in (False, True):
        events = []
        lat = pipe.sample("a red fox runs", [7], plan, s, (H, W), history, cache, events.append)
        assert (lat - want_video).abs().max() <= 1e-4
        assert [e.first for e in events] == [2, 4, 6] and events[-1].done == events[-1].total == 6
        for e in events:  # every block, as it was finished
            assert (e.latents - want_video[:, :, e.first:e.first + block]).abs().max() <= 1e-4
    got_frames = pipe.vae.decode(lat)  # the cached run's latents (equal to the uncached ones above)
    assert got_frames.shape == want_frames.shape
    assert np.abs(got_frames - want_frames).max() <= 1e-3
    videos = pipe.generate("a red fox runs", [7], frames, steps=steps, cfg=6.0, clip=clip, block=block, ar_step=ar,
                           window=window, overlap=overlap, addnoise=0.0, negative_prompt="blue sky", causal_cache=False)
    assert videos[0].shape == (frames, H, W, 3) and videos[0].dtype == np.uint8
    assert np.abs(videos[0].astype(int) - np.round(want_frames[overlap:] * 255)).max() <= 1


def test_cache_equals_recompute_with_history_noise(tiny):
    """With light noise on the history (drawn once a window) and in the synchronous mode, the
    cached run still equals recomputing the window; two seeds batch with guidance."""
    _, _, pipe = tiny
    for ar in (0, 4):
        s = pipe.settings(steps=3, cfg=3.0, block=2, ar_step=ar, window=21, overlap=5, addnoise=20.0)
        plan = pipe.plan(24, 9, s)
        assert len(plan.windows) == 2
        hist = pipe.vae.encode(_clip(9)[-5:])
        a = pipe.sample("a cat", [1, 2], plan, s, (H, W), hist, False)
        b = pipe.sample("a cat", [1, 2], plan, s, (H, W), hist, True)
        assert (a - b).abs().max() <= 1e-4
        assert (a[0] - a[1]).abs().max() > 0.1  # the seeds differ


def test_text_to_video_window_and_seed_row(tiny):
    """Text-to-video over two windows; a seed's video is the same alone or in a batch."""
    _, _, pipe = tiny
    s = pipe.settings(steps=2, cfg=1.0, block=2, ar_step=2, window=21, overlap=5, addnoise=0.0)
    plan = pipe.plan(33, None, s)  # 9 latent frames -> rounded to 10 (blocks of 2)
    assert plan.frames == 37 and "rounded up" in plan.note
    assert [(w.start, w.frames, w.history) for w in plan.windows] == [(0, 6, 0), (4, 6, 2)]
    one = pipe.sample("a dog", [5], plan, s, (H, W), None, True)
    two = pipe.sample("a dog", [3, 5], plan, s, (H, W), None, True)
    assert one.shape == (1, 16, 10, 4, 6)
    assert (one[0] - two[1]).abs().max() <= 1e-5


def test_1p3b_keys_shapes_and_parameter_count():
    """The published 1.3B configs (Wan2.1 ``wan_t2v_1_3B.py``; SkyReels-V2-DF-1.3B adds
    ``inject_sample_info``, diffusers ``convert_skyreelsv2_to_diffusers.py``) built on the meta
    device: every diffusers tensor maps to an argen tensor of the same size, and the count is
    Wan2.1-T2V-1.3B's: its float32 transformer safetensors on the Hub is 5,676,070,424 bytes
    (4 bytes a parameter plus the JSON header)."""
    from diffusers import SkyReelsV2Transformer3DModel, WanTransformer3DModel

    base = {"attention_head_dim": 128, "cross_attn_norm": True, "eps": 1e-6, "ffn_dim": 8960, "freq_dim": 256, "in_channels": 16,
                "num_attention_heads": 12, "num_layers": 30, "out_channels": 16, "patch_size": [1, 2, 2],
                "qk_norm": "rms_norm_across_heads", "text_dim": 4096}
    for cls, extra in ((WanTransformer3DModel, {}), (SkyReelsV2Transformer3DModel, {"inject_sample_info": True})):
        with torch.device("meta"):
            ref = cls(**base, **extra)
        cfg = WanConfig.from_diffusers({**base, **extra, "_class_name": cls.__name__})
        sd = convert_state_dict(ref.state_dict(), cfg)
        with torch.device("meta"):
            ours = WanModel(cfg).state_dict()
        assert sd.keys() == ours.keys()
        assert all(sd[k].numel() == ours[k].numel() for k in ours)
        n = count_params(cfg)
        assert n == sum(p.numel() for p in ref.parameters())
        if cls is WanTransformer3DModel:
            assert n == 1_418_996_800 and 0 < 5_676_070_424 - 4 * n < 200_000
        else:  # the fps embedding and its projection: 2 * 1536 + 1536 * 1536 + 1536 + 1536 * 9216 + 9216
            assert n - 1_418_996_800 == 2 * 1536 + 1536 * 1537 + 1537 * 9216
        assert 1.3e9 <= n < 1.45e9


def test_family_recognised_from_config_files(tiny):
    folder, _, pipe = tiny
    import json

    assert matches(json.loads((folder / "model_index.json").read_text())) == "skyreels-v2-df"
    assert matches({"_class_name": "WanPipeline"}) == "wan2.1-t2v"
    assert matches({"_class_name": "StableDiffusionPipeline"}) is None
    assert pipe.fps == 24 and pipe.size == (544, 960) and pipe.frame_group == 4 and pipe.overlap == 17
    assert pipe.defaults["block"] == 5 and "14.7 GB" in pipe.defaults["gpu_memory"]


def test_bad_input_is_one_line(tiny, tmp_path):
    _, _, pipe = tiny
    small = {"steps": 2, "window": 21, "overlap": 5, "block": 2, "ar_step": 2}
    with pytest.raises(UsageError, match="continues from its last 5"):
        pipe.generate("a cat", [0], 8, clip=_clip(3), **small)
    with pytest.raises(UsageError, match="cannot take 40x32"):
        pipe.generate("a cat", [0], 8, clip=np.zeros((9, 32, 40, 3), np.uint8), **small)
    with pytest.raises(UsageError, match="must be uint8"):
        pipe.generate("a cat", [0], 8, clip=np.zeros((9, H, W, 3), np.float32), **small)
    with pytest.raises(UsageError, match="causal cache needs"):
        pipe.generate("a cat", [0], 8, clip=_clip(9), causal_cache=True, **{**small, "block": 1})
    with pytest.raises(UsageError, match="multiples of the 2-frame causal block"):
        pipe.settings(window=17, overlap=5, block=2)
    plan = pipe.plan(10, 9, pipe.settings(**small))
    assert plan.frames == 16 and "10 frames rounded up to 16" in plan.note
    (tmp_path / "model_index.json").write_text('{"_class_name": "FluxPipeline"}')
    with pytest.raises(ArgenError, match="not a SkyReels-V2"):
        SkyReelsVideo.from_pretrained(tmp_path, device="cpu")
    for err in (UsageError, ArgenError):
        assert err("x").message.count("\n") == 0
