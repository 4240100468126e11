"""Block-diffusion video: the cached sampler against the recompute reference, the sliding
window, the pipeline and `argen video` end to end with a tiny model built here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from argen.checkpoints.argen_format import save_folder
from argen.cli.app import main
from argen.engine.sampling.block_diffusion import extend
from argen.io.metadata import read_metadata
from argen.io.video import read_video
from argen.modalities.video.codec import FrameCodec, FrameCodecConfig, save_codec_dir
from argen.modalities.video.dit import VideoDiT, VideoModelConfig
from argen.modalities.video.text import CaptionVocab

TINY = {"n_layer": 2, "n_head": 2, "d_model": 32}


def tiny_model(seed: int = 0, adaln: bool = False, rope: str = "1d", block_frames: int = 2) -> VideoDiT:
    torch.manual_seed(seed)
    model = VideoDiT(VideoModelConfig(text_vocab=len(CaptionVocab()), backbone={**TINY, "adaln": adaln},
                                      max_frames=64, rope=rope, block_frames=block_frames)).eval()
    torch.nn.init.normal_(model.head.weight, std=0.1)  # a zero head would make every step alike
    if adaln:  # adaLN-Zero starts every block as the identity: give the modulations values
        for name, p in model.named_parameters():
            if "ada" in name or name == "prompt_mod":
                torch.nn.init.normal_(p, std=0.1)
    return model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("video-model")
    torch.manual_seed(1)
    codec = FrameCodec(FrameCodecConfig(block_out_channels=[8, 8, 8], norm_num_groups=4)).eval()
    save_codec_dir(out / "codec", codec)
    model = tiny_model()
    save_folder(out, model.state_dict(), {"modality": "video", "video": model.cfg.to_dict(),
                                          "vocab": CaptionVocab().words, "fps": 8, "codec": "codec"})
    return out


@pytest.mark.parametrize("scheduler", ["flow-euler", "ddim"])
@pytest.mark.parametrize("context_frames, sink, cond_noise, given, cfg", [(16, 0, 0.0, 4, 1.0), (4, 0, 0.0, 5, 1.0),
                                                                          (6, 2, 0.1, 7, 1.0), (6, 2, 0.0, 3, 2.5)])
@pytest.mark.parametrize("adaln, rope, fb", [(False, "1d", 2), (True, "1d", 2), (False, "3d", 2), (False, "1d", 1)])
def test_cached_blocks_equal_recomputing_the_window(scheduler, context_frames, sink, cond_noise, given, cfg, adaln,
                                                    rope, fb):
    model = tiny_model(adaln=adaln, rope=rope, block_frames=fb)
    text = CaptionVocab().encode_batch(["a red circle", "a blue square and a green circle"])
    ctx = torch.randn(2, given, 4, 8, 8)
    kw = dict(steps=3, scheduler=scheduler, context_frames=context_frames, sink_frames=sink, cond_noise=cond_noise,
              cfg_scale=cfg)
    cached = extend(model, text, ctx, 9, generator=torch.Generator().manual_seed(3), **kw)
    reference = extend(model, text, ctx, 9, generator=torch.Generator().manual_seed(3), use_cache=False, **kw)
    assert cached.shape == (2, 9, 4, 8, 8)
    # float32 on CPU: the two paths sum attention in different orders
    assert torch.allclose(cached, reference, atol=1e-4), (cached - reference).abs().max()


def test_guidance_at_scale_zero_is_the_empty_caption_and_rows_do_not_mix():
    model = tiny_model()
    text = CaptionVocab().encode_batch(["a red circle", "a blue square and a green circle"])
    ctx = torch.randn(2, 3, 4, 8, 8)
    kw = dict(steps=3, context_frames=4)
    zero = extend(model, text, ctx, 6, generator=torch.Generator().manual_seed(1), cfg_scale=0.0, **kw)
    empty = extend(model, torch.zeros_like(text), ctx, 6, generator=torch.Generator().manual_seed(1), **kw)
    assert torch.allclose(zero, empty, atol=1e-5)
    guided = extend(model, text, ctx, 6, generator=torch.Generator().manual_seed(1), cfg_scale=3.0, **kw)
    plain = extend(model, text, ctx, 6, generator=torch.Generator().manual_seed(1), **kw)
    assert not torch.allclose(guided, plain, atol=1e-3)  # the caption matters to the untrained model


def test_cache_is_written_once_per_block_and_stays_bounded():
    model = tiny_model()
    writes = []
    real = model.cached_block

    def spy(x, t, cache, pos, commit):
        writes.append((commit, cache.capacity, cache.length))
        return real(x, t, cache, pos, commit)

    model.cached_block = spy
    text = CaptionVocab().encode_batch(["a red circle"])
    out = extend(model, text, None, 40, steps=2, context_frames=4, sink_frames=2, generator=torch.Generator().manual_seed(0))
    assert out.shape[1] == 40
    commits = [w for w in writes if w[0]]
    assert len(commits) == 40 // 2 - 1  # every finished block but the last is written once
    assert len(writes) - len(commits) == 2 * 20  # two denoising steps per block, read-only
    assert len({w[1] for w in writes}) == 1 and max(w[2] for w in writes) <= writes[0][1]


def test_known_frames_of_a_partial_block_are_kept():
    model = tiny_model()
    text = CaptionVocab().encode_batch(["a red circle"])
    ctx = torch.randn(1, 3, 4, 8, 8)  # one whole block and one frame of the next
    out = extend(model, text, ctx, 5, steps=2, generator=torch.Generator().manual_seed(0))
    assert out.shape[1] == 5


def test_pipeline_is_deterministic(model_dir):
    import argen

    pipe = argen.load(str(model_dir), "video", device="cpu")
    a, = pipe("a red circle", frames=6, steps=2, seed=4)
    b, = pipe("a red circle", frames=6, steps=2, seed=4)
    assert a.frames.shape == (6, 32, 32, 3) and np.array_equal(a.frames, b.frames)
    assert a.metadata["seed"] == 4 and a.metadata["scheduler"] == "flow-euler"


def test_the_model_config_sets_the_default_context(model_dir, tmp_path, capsys):
    import json
    import shutil

    import argen

    short = tmp_path / "short-window"
    shutil.copytree(model_dir, short)
    cfg = json.loads((short / "config.json").read_text())
    (short / "config.json").write_text(json.dumps({**cfg, "sampling": {"context": 4}}))
    pipe = argen.load(str(short), "video", device="cpu")
    default, = pipe("a red circle", frames=12, steps=2, seed=4)
    four, = pipe("a red circle", frames=12, steps=2, seed=4, context=4)
    sixteen, = pipe("a red circle", frames=12, steps=2, seed=4, context=16)
    assert default.metadata["context"] == 4 and np.array_equal(default.frames, four.frames)
    assert not np.array_equal(default.frames, sixteen.frames)  # past 6 frames the 4-frame window slides
    assert main(["video", "--model", str(short), "--prompt", "a red circle", "--sink", "4",
                 "-o", str(tmp_path / "x.mp4")]) == 2
    assert "--sink must be in [0, --context), got 4 with a 4-frame context" in capsys.readouterr().err


def test_cli_generates_an_mp4_with_metadata(model_dir, tmp_path, capsys):
    out = tmp_path / "v.mp4"
    assert main(["video", "--model", str(model_dir), "--prompt", "a red circle and a blue square", "--frames", "6",
                 "--steps", "2", "--seed", "1", "-o", str(out)]) == 0
    assert read_video(out, 32, 8).shape == (6, 32, 32, 3)
    assert read_metadata(out)["prompt"] == "a red circle and a blue square"
    err = capsys.readouterr().err
    assert "6 new frames" in err and "codec" in err and "denoising" in err


def test_cli_extends_an_odd_24fps_clip_with_audio(model_dir, tmp_path):
    from tests.test_video_data import _odd_clip_with_audio

    clip = tmp_path / "odd.mp4"
    _odd_clip_with_audio(clip)  # 50x38 at 24 fps for 2 s: 16 frames at the model's 8 fps
    out = tmp_path / "more.mp4"
    assert main(["video", "--model", str(model_dir), "--extend", str(clip), "--frames", "4", "--steps", "1",
                 "--seed", "0", "-o", str(out), "-q"]) == 0
    assert read_video(out, 32, 8).shape[0] == 16 + 4
    only = tmp_path / "only.mp4"
    assert main(["video", "--model", str(model_dir), "--extend", str(clip), "--frames", "4", "--steps", "1",
                 "--only-new", "-o", str(only), "-q"]) == 0
    assert read_video(only, 32, 8).shape[0] == 4


def test_long_generation_slides_the_window(model_dir, tmp_path):
    out = tmp_path / "long.mp4"
    assert main(["video", "--model", str(model_dir), "--prompt", "a red circle", "--frames", "256", "--steps", "1",
                 "--context", "4", "--sink", "2", "-o", str(out), "-q"]) == 0
    assert read_video(out, 32, 8).shape[0] == 256


def test_guided_generation_records_its_scale(model_dir, tmp_path):
    from argen.io.video import read_video_metadata

    out = tmp_path / "guided.mp4"
    assert main(["video", "--model", str(model_dir), "--prompt", "a red circle", "--frames", "4", "--steps", "1",
                 "--cfg", "2.5", "-o", str(out), "-q"]) == 0
    assert read_video_metadata(out)["cfg"] == 2.5


@pytest.mark.parametrize("args, message", [
    (["--frames", "0"], "--frames"), (["--sink", "16"], "--sink"), (["--scheduler", "euler"], "--scheduler"),
    (["--cond-noise", "1.5"], "--cond-noise"), (["--block-frames", "3"], "2-frame blocks"),
    (["-o", "x.avi"], "video outputs are .mp4 files"), (["--prompt", "a red triangle"], "cannot read"), (["--cfg", "-1"], "--cfg"),
])
def test_bad_flags_are_one_line_errors(model_dir, tmp_path, capsys, args, message):
    base = ["video", "--model", str(model_dir), "--prompt", "a red circle", "--frames", "2", "--steps", "1",
            "-o", str(tmp_path / "x.mp4")]
    assert main(base + args) in (1, 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("Error:") and message in err[0]


def test_truncated_or_missing_clips_are_clear_errors(model_dir, tmp_path, capsys):
    from tests.test_video_data import _odd_clip_with_audio

    clip = tmp_path / "odd.mp4"
    _odd_clip_with_audio(clip)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    for bad in (cut, tmp_path / "none.mp4"):
        assert main(["video", "--model", str(model_dir), "--extend", str(bad), "-o", str(tmp_path / "o.mp4")]) == 1
        assert capsys.readouterr().err.startswith("Error:")
    assert not (tmp_path / "o.mp4").exists()


def test_a_damaged_model_folder_is_a_clear_error(model_dir, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    cfg = (broken / "config.json").read_text().replace('"block_frames": 2', '"block_frames": 2, "colour": 1')
    (broken / "config.json").write_text(cfg)
    assert main(["video", "--model", str(broken), "--prompt", "a red circle", "-o", str(tmp_path / "x.mp4")]) == 1
    assert "invalid video model config" in capsys.readouterr().err


def test_eval_video_reports_psnr_against_the_baseline(model_dir, capsys):
    import json

    assert main(["eval", "video", "--model", str(model_dir), "--n", "2", "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["psnr_per_frame"]) == 8 and len(report["baseline_psnr_per_frame"]) == 8
    assert report["baseline_psnr"] > 10 and 0.0 <= report["objects_kept"] <= 1.0
    by_count = report["objects_kept_by_count"]  # JSON keys are strings
    assert sum(b for _, b in by_count.values()) == 2 and all(k in {"1", "2", "3"} for k in by_count)
    assert sum(a for a, _ in by_count.values()) / 2 == report["objects_kept"]
    assert report["collide"] is False  # as the model was trained (its config.json has no data.collide)
    assert main(["eval", "video", "--model", str(model_dir), "--n", "2", "--collide", "--json", "-q"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["collide"] is True and other["baseline_psnr"] != report["baseline_psnr"]  # other clips


def test_kept_by_count_groups_clips_by_their_number_of_objects():
    from types import SimpleNamespace

    from argen.lab.eval.video import kept_by_count

    movers = [SimpleNamespace(movers=[0] * n) for n in (3, 1, 2, 3, 1)]
    assert kept_by_count([True, True, False, False, False], movers) == {1: [1, 2], 2: [0, 1], 3: [1, 2]}


def test_batch_recipe_video_jobs(model_dir, tmp_path):
    import json

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
jobs:
  - name: clips
    modality: video
    model: {model_dir}
    frames: 4
    steps: 1
    prompts: ["a red circle", "a blue square and a green circle"]
    seeds: [3]
""")
    out = tmp_path / "out"
    assert main(["run", str(recipe), "-o", str(out), "-q"]) == 0
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    done = [r for r in rows if r["status"] == "done"]
    assert len(done) == 2 and all(r["path"].endswith(".mp4") for r in done)
    assert read_video(out / done[1]["path"], 32, 8).shape == (4, 32, 32, 3)
    assert read_metadata(out / done[1]["path"])["prompt"] == "a blue square and a green circle"


def test_a_long_clip_needs_only_its_window():
    from argen.engine.sampling.block_diffusion import context_frames_used

    model = tiny_model()
    text = CaptionVocab().encode_batch(["a red circle"])
    ctx = torch.randn(1, 23, 4, 8, 8)
    used = context_frames_used(23, 2, 6, 2)
    assert used == [0, 1, 18, 19, 20, 21, 22]  # the sink block, the two latest blocks, the partial one
    kw = dict(steps=2, context_frames=6, sink_frames=2)
    whole = extend(model, text, ctx, 5, generator=torch.Generator().manual_seed(0), **kw)
    window = extend(model, text, ctx[:, used], 5, generator=torch.Generator().manual_seed(0), **kw)
    assert torch.allclose(whole, window, atol=1e-4)


BUNDLED = __import__("pathlib").Path(__file__).resolve().parents[1] / "weights" / "bouncing-video"


@pytest.mark.skipif(not (BUNDLED / "model.safetensors").is_file(), reason="bundled video model not trained yet")
def test_bundled_model_predicts_better_than_copying_the_last_frame(tmp_path):
    """The default model (no --model) extends held-out clips through the CLI: the MP4 opens at
    32x32 with the clip's frames then the new ones, and its first two new frames are closer to the
    true continuation than a copy of the clip's last frame (eval: 21.1 vs 16.0 dB on frame 1)."""
    from argen.io.video import write_mp4
    from argen.lab.data import bouncing
    from argen.lab.eval.video import psnr_frames

    gains = []
    for i in range(4):
        caption, frames, _ = bouncing.sample(2024, i, "val", 10, 32)
        src = write_mp4(tmp_path / f"clip{i}.mp4", frames[:8], 8)
        clip = read_video(src, 32, 8)  # what the model is given: the clip after H.264
        out = tmp_path / f"more{i}.mp4"
        assert main(["video", "--extend", str(src), "--prompt", caption, "--frames", "2", "--seed", "0",
                     "-o", str(out), "-q"]) == 0
        video = read_video(out, 32, 8)
        assert video.shape == (8 + 2, 32, 32, 3)
        truth = frames[None, 8:].astype(np.float64)  # (1, 2, H, W, 3)
        gains.append(psnr_frames(video[None, 8:].astype(np.float64), truth).mean()
                     - psnr_frames(np.repeat(clip[None, -1:], 2, 1).astype(np.float64), truth).mean())
    assert np.mean(gains) > 2.0, gains
    assert read_metadata(out)["model"] == "bouncing-video"
