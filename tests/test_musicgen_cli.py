"""MusicGen through the audio modality's contract: `argen audio --model DIR`, argen.load, batch
recipes and hub ids, on tiny random transformers checkpoints (mono, stereo, melody) saved in the
official layout."""

import json

import musicgen_fixtures as fx
import numpy as np
import pytest
from musicgen_fixtures import one_thread  # noqa: F401 (an autouse fixture)

from argen.cli.app import main
from argen.io.audio import read_audio, read_audio_metadata, write_audio

FRAME = fx.HOP  # samples per codec frame


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {kind: fx.save(fx.build(kind), tmp_path_factory.mktemp(kind)) for kind in ("mono", "stereo", "melody")}


def audio_info(path):
    """(sample rate, channels, samples) of a written file, read back by PyAV."""
    import av

    with av.open(str(path)) as src:
        s = src.streams.audio[0]
        n = sum(f.samples for f in src.decode(s))  # samples per channel
        return s.codec_context.sample_rate, s.codec_context.channels, n


@pytest.mark.parametrize("kind, channels", [("mono", 1), ("stereo", 2)])
def test_cli_writes_the_models_rate_channels_and_length(folders, tmp_path, kind, channels):
    out = tmp_path / "beat-{seed}.wav"
    assert main(["audio", "--model", str(folders[kind]), "-p", "lo-fi beat", "--seconds", "0.4", "-n", "2",
                 "--seed", "5", "-o", str(out), "-q"]) == 0
    for seed in (5, 6):
        path = tmp_path / f"beat-{seed}.wav"
        rate, ch, n = audio_info(path)
        assert (rate, ch) == (fx.RATE, channels)
        assert n == int(0.4 * fx.RATE)  # 20 frames of 32 samples
        meta = read_audio_metadata(path)
        assert meta["seed"] == seed and meta["top_k"] == 250 and meta["cfg"] == 3.0 and meta["channels"] == channels
    again = tmp_path / "again.wav"
    assert main(["audio", "--model", str(folders[kind]), "-p", "lo-fi beat", "--seconds", "0.4", "--seed", "6",
                 "-o", str(again), "-q"]) == 0
    assert again.read_bytes() == (tmp_path / "beat-6.wav").read_bytes()  # sample 2 of a batch = that seed alone


def test_api_equals_the_model_and_rows_do_not_depend_on_the_batch(folders):
    import argen
    from argen.engine.sampling.processors import SamplingConfig
    from argen.modalities.audio.musicgen.model import MusicGen

    pipe = argen.load(str(folders["mono"]), device="cpu")
    assert type(pipe).__name__ == "MusicGenPipeline"
    two = pipe(["calm strings", "jazz drums"], seconds=0.3, seed=3)
    one = pipe("jazz drums", seconds=0.3, seed=4, batch_size=1)
    assert np.array_equal(two[1].samples, one[0].samples)
    ref = MusicGen.from_pretrained(folders["mono"]).generate(
        ["jazz drums"], [4], 0.3, SamplingConfig(temperature=1.0, top_k=250, cfg_scale=3.0))[0]
    assert np.array_equal(one[0].samples, ref[0])  # the published defaults; the model's samples as they are


def test_extend_keeps_the_clip_and_only_new_drops_it(folders, tmp_path):
    import argen

    pipe = argen.load(str(folders["mono"]), device="cpu")
    n_clip = 7 * FRAME + 5  # not a whole number of frames
    clip = (0.3 * np.sin(np.arange(n_clip) * 0.05)).astype(np.float32)
    path = write_audio(tmp_path / "clip.flac", clip, fx.RATE)
    clip = read_audio(path, fx.RATE)
    full, = pipe("calm strings", extend=str(path), seconds=0.2, seed=1)
    new, = pipe("calm strings", extend=str(path), seconds=0.2, seed=1, only_new=True)
    assert np.array_equal(full.samples[:n_clip], clip)
    assert np.array_equal(full.samples[n_clip:], new.samples) and len(new.samples) == int(0.2 * fx.RATE)


def test_melody_flag_conditions_a_melody_model(folders, tmp_path):
    import argen

    t = np.arange(fx.RATE) / fx.RATE
    tune = write_audio(tmp_path / "tune.wav", 0.5 * np.sin(2 * np.pi * 330 * t), fx.RATE)
    out = tmp_path / "m.wav"
    assert main(["audio", "--model", str(folders["melody"]), "-p", "calm strings", "--melody", str(tune),
                 "--seconds", "0.3", "--seed", "0", "-o", str(out), "-q"]) == 0
    assert read_audio_metadata(out)["melody"] == "tune.wav"
    pipe = argen.load(str(folders["melody"]), device="cpu")
    with_tune, = pipe("calm strings", melody=str(tune), seconds=0.3, seed=0)
    assert np.abs(read_audio(out, fx.RATE) - with_tune.samples).max() <= 1.01 / 32768  # 16-bit WAV
    # the tune reaches the decoder: its codes differ from the same request without it
    m, cfg = pipe.model, pipe.default_sampling()
    tune_samples = read_audio(tune, fx.RATE)
    assert not np.array_equal(m.generate_codes(["calm strings"], [0], 0.3, cfg, melody=tune_samples),
                              m.generate_codes(["calm strings"], [0], 0.3, cfg))


@pytest.mark.parametrize("kind, args, message", [
    ("mono", ["-p", "x", "--melody", "{tune}"], "has no melody conditioning"),
    ("mono", ["-p", "x", "--seconds", "0"], "--seconds"),
    ("mono", ["-p", "x", "--seconds", "3601"], "--seconds"),
    ("mono", ["-p", "x", "--extend", "{corrupt}"], "not a readable audio file"),
    ("notext", ["-p", "calm strings"], "has no text encoder"),
])
def test_bad_input_is_one_line_and_writes_nothing(folders, tmp_path, capsys, kind, args, message):
    import shutil

    folder = folders["mono"]
    if kind == "notext":  # the same checkpoint without its tokenizer: no text encoder
        folder = tmp_path / "notext"
        shutil.copytree(folders["mono"], folder)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            (folder / name).unlink(missing_ok=True)
    tune = write_audio(tmp_path / "tune.wav", np.zeros(400, np.float32), fx.RATE)
    corrupt = tmp_path / "bad.mp3"
    corrupt.write_bytes(b"ID3 this is not audio" * 10)
    out = tmp_path / "out.wav"
    args = [a.format(tune=tune, corrupt=corrupt) for a in args]
    assert main(["audio", "--model", str(folder), *args, "-o", str(out)]) in (1, 2)
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error:") and message in err and "Traceback" not in err
    assert not out.exists()


def test_recipe_jobs_validate_and_equal_the_cli(folders, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
jobs:
  - name: music
    modality: audio
    model: {folders['stereo']}
    prompts: ["lo-fi beat with piano"]
    seeds: [2]
    seconds: 0.3
    output: "{{job}}/{{seed}}.wav"
""")
    out = tmp_path / "out"
    assert main(["run", str(recipe), "-o", str(out), "-q"]) == 0
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["done"]
    single = tmp_path / "single.wav"
    assert main(["audio", "--model", str(folders["stereo"]), "-p", "lo-fi beat with piano", "--seed", "2",
                 "--seconds", "0.3", "-o", str(single), "-q"]) == 0
    assert np.array_equal(read_audio(out / "music" / "2.wav", fx.RATE, 2), read_audio(single, fx.RATE, 2))
    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe.read_text().replace("seconds: 0.3", "seconds: 0"))
    assert main(["run", str(bad), "-o", str(tmp_path / "o2"), "--dry-run"]) in (1, 2)


def test_hub_entries_are_audio_models_of_the_registry():
    from argen.checkpoints.registry import load_registry

    models = load_registry().models
    for name, repo in (("musicgen-small", "facebook/musicgen-small"), ("musicgen-medium", "facebook/musicgen-medium"),
                       ("musicgen-large", "facebook/musicgen-large")):
        entry = models[name]
        files = {f.file for f in entry.hub.files}
        assert entry.modality == "audio" and entry.hub.repo_id == repo and entry.hub.convert is None
        assert "config.json" in files and files & {"model.safetensors", "pytorch_model.bin"}
        assert files & {"spiece.model", "tokenizer.json"}  # the T5 tokenizer (TextEncoder.load needs one)
