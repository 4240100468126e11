"""`argen train audio-codec` then `argen train audio`, and `argen train video-codec` then
`argen train video`, on a tiny budget: the folders load, generate, and their cards carry the
measured scores."""

import json

import numpy as np

from argen.io.audio import read_audio
from argen.io.video import read_video

LOOP = ["train:", "  batch_size: 4", "  max_steps: 4", "  warmup_steps: 2", "  eval_every: 2",
        "  eval_batches: 1", "  dtype: float32"]


def write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def test_train_audio_codec_then_language_model_then_generate(cli, tmp_path):
    codec_dir = tmp_path / "codec"
    recipe = write(tmp_path, "codec.yaml", ["task: audio-codec", "name: tiny-codec", "data:", "  dataset: melodies",
                                            "  train_size: 8", "  val_size: 3", "model:", "  channels: [4, 8]",
                                            "  strides: [16, 20]", "  latent_dim: 8", "  n_codebooks: 2",
                                            "  codebook_size: 16"] + LOOP)
    code, _, err = cli("train", "audio-codec", "--recipe", recipe, "-o", codec_dir, "-q")
    assert code == 0, err
    summary = json.loads((codec_dir / "train_log.json").read_text())["summary"]
    assert summary["si_snr"] < 60 and f"{summary['si_snr']} dB" in (codec_dir / "README.md").read_text()

    recipe = write(tmp_path, "lm.yaml", ["task: audio", "name: tiny-audio", "data:", "  dataset: melodies",
                                         "  train_size: 8", "  val_size: 3", f"  codec: {codec_dir}", "  eval_prompts: 2",
                                         "model:", "  n_layer: 1", "  n_head: 2", "  d_model: 32"] + LOOP)
    out = tmp_path / "audio"
    code, _, err = cli("train", "audio", "--recipe", recipe, "-o", out, "-q")
    assert code == 0, err
    assert (out / "codec" / "model.safetensors").is_file()
    assert "note accuracy" in (out / "README.md").read_text()
    code, stdout, err = cli("audio", "--model", out, "-p", "sine C4 D4", "--seed", "0", "-o", tmp_path / "a.wav")
    assert code == 0, err
    assert len(read_audio(stdout.strip(), 16000)) == 16000  # two beats at 120 bpm


def test_train_video_codec_then_transformer_then_generate(cli, tmp_path):
    codec_dir = tmp_path / "codec"
    data = ["data:", "  dataset: bouncing", "  train_size: 4", "  val_size: 2", "  clip_frames: 10", "  frames: 8",
            "  collide: true"]
    recipe = write(tmp_path, "codec.yaml", ["task: video-codec", "name: tiny-codec", *data, "model:",
                                            "  block_out_channels: [8, 8, 8]", "  norm_num_groups: 4"] + LOOP)
    code, _, err = cli("train", "video-codec", "--recipe", recipe, "-o", codec_dir, "-q")
    assert code == 0, err
    cfg = json.loads((codec_dir / "config.json").read_text())["codec"]
    assert len(cfg["latent_std"]) == 4 and all(s > 0 for s in cfg["latent_std"])  # measured, not the defaults
    assert "objects bouncing off each other" in (codec_dir / "README.md").read_text()

    recipe = write(tmp_path, "video.yaml", ["task: video", "name: tiny-video", *data, f"  codec: {codec_dir}",
                                            "  foreground_weight: 4", "  object_balance: true", "  layout: clean-copy",
                                            "  object_weights: [1, 0, 1]", "  time_shift: 3", "model:",
                                            "  backbone: {n_layer: 1, n_head: 2, d_model: 32}"] + LOOP)
    out = tmp_path / "video"
    code, _, err = cli("train", "video", "--recipe", recipe, "-o", out, "-q")
    assert code == 0, err
    log = json.loads((out / "train_log.json").read_text())["summary"]
    assert len(log["psnr_per_frame"]) == 8 and np.isfinite(log["baseline_psnr"])
    card = (out / "README.md").read_text()
    assert "show some of an object weighs\n  4, on the black background 1" in card and "shared out per object" in card
    assert "`data.layout: clean-copy`" in card and "two 0%" in card  # two-object clips weigh 0
    assert "`data.time_shift: 3`" in card and "(`data.collide`)" in card
    assert json.loads((out / "config.json").read_text())["data"] == {"collide": True}
    code, stdout, err = cli("video", "--model", out, "-p", "a red circle", "--frames", "4", "--steps", "2",
                            "-o", tmp_path / "v.mp4")
    assert code == 0, err
    assert read_video(stdout.strip(), 32, 8).shape == (4, 32, 32, 3)
