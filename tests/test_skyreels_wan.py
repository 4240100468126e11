"""Wan2.1-T2V (all frames at once) against diffusers' WanPipeline, and Self-Forcing's causal
KV-cached mode: its checkpoint layout (the original Wan names under ``generator_ema.model.``),
its few-step sampler, cached equal to recomputed."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("diffusers")

from argen.errors import ArgenError, UsageError
from argen.modalities.video.skyreels.pipeline import SkyReelsVideo
from argen.modalities.video.skyreels.schedule import SelfForcingSchedule
from argen.modalities.video.skyreels.tiny import build_tiny

H, W = 32, 48
TEXT_LEN = 16

# diffusers name -> the original Wan name (Wan2.1 / Self-Forcing wan/modules/model.py): the inverse
# of diffusers' convert_wan_transformer_to_diffusers, written out here to make the test fixture
ORIGINAL = [("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
            ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
            ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
            ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
            ("condition_embedder.time_proj", "time_projection.1"), ("attn1.to_out.0", "self_attn.o"),
            ("attn2.to_out.0", "cross_attn.o"), ("attn1.to_", "self_attn."), ("attn2.to_", "cross_attn."),
            ("attn1.", "self_attn."), ("attn2.", "cross_attn."), ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"),
            ("norm2", "norm__x"), ("norm3", "norm2"), ("norm__x", "norm3"), ("proj_out", "head.head")]


def to_original(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        if k == "scale_shift_table":
            out["head.modulation"] = v
            continue
        for a, b in ORIGINAL:
            k = k.replace(a, b)
        out[k.replace("scale_shift_table", "modulation")] = v
    return out


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tensors are tiny: one thread avoids OpenMP's spinning on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    folder, ref = build_tiny(tmp_path_factory.mktemp("wan") / "wan", kind="wan", seed=3)
    pipe = SkyReelsVideo.from_pretrained(folder, device="cpu", dtype="float32")
    pipe.text.max_length = TEXT_LEN
    return folder, ref, pipe


@pytest.fixture(scope="module")
def self_forcing(wan, tmp_path_factory):
    folder, ref, _ = wan
    sd = to_original(ref.transformer.state_dict())
    ckpt = tmp_path_factory.mktemp("sf") / "self_forcing_dmd.pt"
    torch.save({"generator_ema": {f"model.{k}": v for k, v in sd.items()},
                "generator": {f"model.{k}": v + 1.0 for k, v in sd.items()}}, ckpt)  # EMA weights are the ones used
    pipe = SkyReelsVideo.from_pretrained(folder, device="cpu", dtype="float32", weights=ckpt)
    pipe.text.max_length = TEXT_LEN
    return ckpt, pipe


def test_wan_t2v_matches_diffusers_pipeline(wan, monkeypatch):
    import diffusers.pipelines.wan.pipeline_wan as mod

    monkeypatch.setattr(mod, "ftfy", types.SimpleNamespace(fix_text=lambda s: s), raising=False)
    _, ref, pipe = wan
    seen = []
    out = ref(prompt="a cat on the hill", negative_prompt="blue", height=H, width=W, num_frames=9,
              num_inference_steps=3, guidance_scale=5.0, generator=torch.Generator().manual_seed(11),
              max_sequence_length=TEXT_LEN, output_type="np",
              callback_on_step_end=lambda p, i, t, kw: seen.append(kw["latents"].clone()) or kw).frames[0]
    s = pipe.settings(steps=3, cfg=5.0, negative_prompt="blue")
    plan = pipe.plan(9, None, s)
    assert len(plan.windows) == 1 and plan.frames == 9
    lat = pipe.sample("a cat on the hill", [11], plan, s, (H, W), None, False)
    assert (lat - seen[-1]).abs().max() <= 1e-4
    frames = pipe.vae.decode(lat)
    assert frames.shape == out.shape and np.abs(frames - out).max() <= 1e-3
    with pytest.raises(UsageError, match="cannot extend"):
        pipe.generate("a cat", [0], 8, clip=np.zeros((20, H, W, 3), np.uint8))
    with pytest.raises(UsageError, match="at most 81 frames"):
        pipe.plan(97, None, s)


def test_self_forcing_checkpoint_loads_into_the_wan_layout(wan, self_forcing):
    """The Self-Forcing generator (original Wan names) gives diffusers' Wan transformer's velocity
    at a timestep per latent frame (diffusers' per-token timesteps of Wan 2.2 TI2V)."""
    _, ref, _ = wan
    _, pipe = self_forcing
    assert pipe.family.name == "self-forcing" and pipe.transformer.cfg.time_f64
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, 3, H // 8, W // 8, generator=gen)
    ctx = torch.randn(1, TEXT_LEN, 32, generator=gen)
    t = torch.tensor([[1000.0, 937.5, 0.0]])
    with torch.no_grad():
        want = ref.transformer(x, t.repeat_interleave(6, dim=1), ctx, return_dict=False)[0]
        got = pipe.transformer(x, t, pipe.transformer.text_context(ctx))
    # the original code embeds times in float64, diffusers' Wan in float32: a few 1e-6 apart
    assert (got - want).abs().max() <= 1e-4 and want.abs().max() > 0.1


def test_self_forcing_steps_cached_equals_recomputed(self_forcing):
    _, pipe = self_forcing
    sf = SelfForcingSchedule()
    assert torch.allclose(sf.timesteps, torch.tensor([1000.0, 937.5, 2500 / 3, 625.0]))
    s = pipe.settings(window=21, overlap=9)  # 6 latent frames a window, 3 of history
    clip = np.random.default_rng(2).integers(0, 256, size=(12, H, W, 3), dtype=np.uint8)
    for frames, history in ((33, None), (24, pipe.vae.encode(clip[-9:]))):
        plan = pipe.plan(frames, None if history is None else len(clip), s)
        assert len(plan.windows) >= 2
        a = pipe.sample("a red fox", [4, 9], plan, s, (H, W), history, False)
        b = pipe.sample("a red fox", [4, 9], plan, s, (H, W), history, True)
        assert (a - b).abs().max() <= 1e-4
    with pytest.raises(UsageError, match="4 fixed steps"):
        pipe.settings(steps=30)


def test_self_forcing_refuses_other_files(wan, tmp_path):
    folder, _, _ = wan
    bad = tmp_path / "x.pt"
    torch.save({"generator_ema": {"foo": torch.zeros(1)}}, bad)
    with pytest.raises(ArgenError, match="not a Self-Forcing checkpoint"):
        SkyReelsVideo.from_pretrained(folder, device="cpu", weights=bad)
    (tmp_path / "code.pt").write_bytes(b"not a zip")  # no checkpoint at all: called that, not a refused pickle
    with pytest.raises(ArgenError, match="is not a PyTorch checkpoint"):
        SkyReelsVideo.from_pretrained(folder, device="cpu", weights=tmp_path / "code.pt")


def test_cli_wan_and_self_forcing_folders(cli, wan, self_forcing, tmp_path):
    """`argen video --model` on a Wan2.1 diffusers folder, and on the folder `argen weights pull
    self-forcing` writes (its config.json names the base folder and the checkpoint)."""
    import av

    from argen.io.video import read_video_metadata
    from argen.modalities.video.skyreels.family import convert_files

    folder, _, _ = wan
    ckpt, _ = self_forcing
    small = ("-p", "a red fox", "--size", f"{W}x{H}", "--device", "cpu", "--frames", "9")

    def frames_of(path):
        with av.open(str(path)) as src:
            frames = [f.to_ndarray(format="rgb24") for f in src.decode(src.streams.video[0])]
        return len(frames), frames[0].shape[:2]

    code, _, err = cli("video", "--model", folder, *small, "--steps", "2", "-o", tmp_path / "wan.mp4")
    assert code == 0, err
    assert frames_of(tmp_path / "wan.mp4") == (9, (H, W))
    assert read_video_metadata(tmp_path / "wan.mp4")["family"] == "wan2.1-t2v"
    code, _, err = cli("video", "--model", folder, *small, "--overlap", "5", "-o", tmp_path / "no.mp4")
    assert code != 0 and "--overlap does not apply to wan2.1-t2v" in err and not (tmp_path / "no.mp4").exists()

    sf = convert_files([ckpt], tmp_path / "sf" / "argen", name="self-forcing", base=str(folder))
    code, _, err = cli("video", "--model", sf, *small, "--context", "21", "--overlap", "9", "-o", tmp_path / "sf.mp4")
    assert code == 0, err
    assert frames_of(tmp_path / "sf.mp4") == (9, (H, W))
    meta = read_video_metadata(tmp_path / "sf.mp4")
    assert meta["family"] == "self-forcing" and meta["steps"] == 4 and meta["causal_cache"] is True
    code, _, err = cli("video", "--model", sf, *small, "--steps", "30", "-o", tmp_path / "no.mp4")
    assert code != 0 and "4 fixed steps" in err and not (tmp_path / "no.mp4").exists()
