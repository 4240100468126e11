"""Codec-token audio: parallel streams in the engine's loop, the delay-pattern layout, and
`argen audio` end to end with a tiny model built here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from argen.checkpoints.argen_format import save_model_dir
from argen.cli.app import main
from argen.engine.config import TransformerConfig
from argen.engine.sampling.next_token import generate
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.rules import token_rules
from argen.engine.transformer import Transformer
from argen.io.audio import read_audio, write_audio
from argen.io.metadata import read_metadata
from argen.lab.data import melodies
from argen.modalities.audio.codec import AudioCodec, CodecConfig, save_codec_dir
from argen.modalities.audio.layout import AudioLayout

SR = melodies.SAMPLE_RATE
CODEC = CodecConfig(channels=[4, 8], strides=[16, 20], latent_dim=8, n_codebooks=3, codebook_size=16)


def stream_model(layout: AudioLayout, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    cfg = TransformerConfig(vocab_size=layout.vocab_size, n_streams=layout.n_codebooks, cond_vocab=len(layout.words),
                            n_layer=2, n_head=2, d_model=32, max_seq_len=1024)
    return Transformer(cfg).eval()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("audio-model")
    torch.manual_seed(0)
    save_codec_dir(out / "codec", AudioCodec(CODEC).eval())
    layout = AudioLayout(n_codebooks=3, codebook_size=16, hop=CODEC.hop)
    save_model_dir(out, stream_model(layout), "audio", {"audio": layout.to_dict(), "codec": "codec",
                                                        "sampling": {"cfg_scale": 3.0, "temperature": 1.0, "top_k": 8}})
    return out


def test_streams_sample_one_token_per_codebook_with_and_without_cache():
    lay = AudioLayout(n_codebooks=3, codebook_size=16)
    model = stream_model(lay)
    prompts = [lay.prompt("sine C4 E4"), lay.prompt(None) + lay.delayed_steps(torch.randint(0, 16, (3, 4)))]
    sampling = SamplingConfig(temperature=1.0, cfg_scale=2.0)
    uncond = [lay.prompt(None)] * 2
    kw = dict(seed=5, rules=token_rules(lay.stream_vocab, uncond))
    cached = generate(model, prompts, 12, sampling, **kw)
    recomputed = generate(model, prompts, 12, sampling, use_cache=False, **kw)
    assert cached == recomputed
    assert all(len(row) == 12 and all(len(t) == 3 and max(t) < lay.stream_vocab for t in row) for row in cached)
    alone = generate(model, prompts[1:], 12, sampling, seed=6, rules=token_rules(lay.stream_vocab, uncond[1:]))
    assert alone[0] == cached[1]  # a row samples the same alone as in a batch


def test_delay_pattern_slots_are_forced():
    lay = AudioLayout(n_codebooks=3, codebook_size=16)
    clip = torch.randint(0, 16, (3, 5))
    known, forced = lay.forced(clip, total_frames=9)
    assert len(known) == 5 and forced.shape == (9 + 3 - 1 - 5, 3)
    # the clip's tail still fills the later codebooks for the first K - 1 new steps
    assert forced[0, 1] == clip[1, 4] and forced[0, 2] == clip[2, 3] and forced[1, 2] == clip[2, 4]
    assert forced[0, 0] == -1 and (forced[-1, :2] == lay.pad).all() and forced[-1, 2] == -1
    model = stream_model(lay)
    steps = generate(model, [lay.prompt(None) + known], forced.shape[0], SamplingConfig(temperature=1.0), seed=0,
                     rules=token_rules(forced=forced[None]))[0]
    codes = lay.codes_from_steps(known + steps)
    assert codes.shape == (3, 9) and torch.equal(codes[:, :5], clip)


def test_beat_cues_sit_before_each_beat_and_are_dropped_before_decoding():
    lay = AudioLayout(n_codebooks=3, codebook_size=16, beat_cues=True)
    cues = lay.cues("saw C4 D4 E4 at 150 bpm")  # 0.4 s a beat: 20 frames at 50 frames/s
    words = {s: lay.words[c[0] - lay.vocab_size] for s, c in cues.items()}
    assert words == {0: "C4", 20: "D4", 40: "E4", 60: "<end>"}
    assert lay.cues(None) == {} and AudioLayout(n_codebooks=3, codebook_size=16).cues("saw C4") == {}
    codes = torch.randint(0, 16, (3, 70))
    steps = lay.with_cues(lay.delayed_steps(codes), cues)
    assert len(steps) == 70 + 2 + 4 and steps[0] == cues[0] and steps[21] == cues[20] and steps[63] == cues[60]
    assert torch.equal(lay.codes_from_steps(steps), codes)
    # generation: a clip of 30 frames, 70 frames in all: the cues before frames 0 and 20 come with
    # the clip, the later ones are forced, and the sampled steps are the -1 rows
    known, forced = lay.forced(codes[:, :30], 70, "saw C4 D4 E4 at 150 bpm")
    assert len(known) == 32 and known[21] == cues[20]
    assert forced.shape == (70 + 2 - 30 + 2, 3) and tuple(forced[40 - 30].tolist()) == cues[40]
    assert (forced[:, 0] == -1).sum() == 40  # one sampled code-0 per new frame


def test_audio_training_batches_put_no_loss_on_cues_prompts_or_pads():
    from argen.lab.tasks.audio import IGNORE, AudioTask

    task = AudioTask.__new__(AudioTask)
    task.layout = lay = AudioLayout(n_codebooks=2, codebook_size=8, beat_cues=True)
    prompt = "sine C4 E4 at 120 bpm"  # 25 frames a beat
    steps = lay.with_cues(lay.delayed_steps(torch.randint(0, 8, (2, 60))), lay.cues(prompt))
    x, y = task.make_batch([(lay.prompt(prompt), steps)] * 64, torch.Generator().manual_seed(0))
    assert x.shape[-1] == 2 and y[y != IGNORE].max() < lay.pad
    lengths = (x[..., 0] != lay.pad).sum(1)  # right-padded rows: the prompt's words and the cues may be dropped
    full = len(lay.prompt(prompt)) + len(steps) - 1
    no_words = 1 + len(steps) - 1
    no_cues = 1 + len(lay.without_cues(steps)) - 1
    assert set(lengths.tolist()) == {full, no_words, no_cues}
    assert (y != IGNORE).sum((1, 2)).eq(2 * 60).all()  # the same codes carry loss in every variant


def test_continuation_keeps_the_clip_bit_exact_and_is_deterministic(model_dir, tmp_path):
    import argen
    from argen.io.audio import write_audio

    pipe = argen.load(str(model_dir), "audio", device="cpu")
    clip = melodies.render(melodies.parse_prompt("sine C4 E4 G4 at 100 bpm"))[:7777]  # not a whole number of codec frames
    path = write_audio(tmp_path / "clip.flac", clip, SR, {})  # lossless, as any file ffmpeg reads
    clip = read_audio(path, SR)
    a, = pipe(extend=str(path), seconds=0.5, seed=1)
    b, = pipe(extend=str(path), seconds=0.5, seed=1)
    assert np.array_equal(a.samples[:7777], clip) and len(a.samples) == 7777 + SR // 2
    assert np.array_equal(a.samples, b.samples)
    p, = pipe("saw C4 D4 at 120 bpm", seed=2)
    assert len(p.samples) == SR  # the melody's own length: two beats at 120 bpm


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".ogg"])
def test_every_format_has_the_requested_duration(model_dir, tmp_path, suffix):
    out = tmp_path / f"a{suffix}"
    assert main(["audio", "--model", str(model_dir), "--prompt", "square C4 E4 G4", "--seconds", "1.3",
                 "--seed", "4", "-o", str(out), "-q"]) == 0
    assert abs(len(read_audio(out, SR)) - 1.3 * SR) <= CODEC.hop
    assert read_metadata(out)["prompt"] == "square C4 E4 G4"


def test_extend_any_clip_and_preview(model_dir, tmp_path):
    audio = melodies.render(melodies.parse_prompt("triangle A3 B3 C4 at 90 bpm"))
    clip = write_audio(tmp_path / "clip.flac", audio[:SR], SR)
    out, spec = tmp_path / "more.wav", tmp_path / "spec.png"
    assert main(["audio", "--model", str(model_dir), "--extend", str(clip), "--seconds", "0.5", "--preview", str(spec),
                 "-o", str(out), "-q"]) == 0
    back = read_audio(out, SR)
    assert len(back) == SR + SR // 2 and np.abs(back[:SR] - audio[:SR]).max() < 1e-4
    from PIL import Image

    with Image.open(spec) as im:
        assert im.size == (800, 400)  # argen/io/spectrogram.py's WIDTH x HEIGHT, axes and colour bar included


@pytest.mark.parametrize("args, message", [
    (["--prompt", "flute C4"], "sine|square|saw|triangle"), (["--prompt", "sine H9"], "not a note"),
    (["--prompt", "sine C4", "--seconds", "0"], "--seconds"),
    (["--prompt", "sine C4", "-o", "x.aiff"], "audio outputs are .wav, .flac, .mp3, .ogg files"),
    (["--extend", "missing.wav"], "not found"),
    (["--extend", "."], "is a folder, not a file"),
])
def test_bad_input_is_a_one_line_error(model_dir, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["audio", "--model", str(model_dir), *args]) in (1, 2)
    err = capsys.readouterr().err
    assert err.startswith("Error:") and message in err


def test_video_without_audio_is_refused(model_dir, tmp_path, capsys):
    from tests.test_audio_data import _silent_video

    video = _silent_video(tmp_path / "v.mp4")
    assert main(["audio", "--model", str(model_dir), "--extend", str(video), "-o", str(tmp_path / "o.wav")]) == 1
    assert "no audio stream" in capsys.readouterr().err


def test_eval_audio_reports_every_figure(model_dir, capsys):
    import json

    assert main(["eval", "audio", "--model", str(model_dir), "--n", "2", "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("note_accuracy", "wave_accuracy", "continuation_wave_kept"):
        assert 0.0 <= report[key] <= 1.0
    assert report["prompts"] == 2 and report["continuations"] == 1


def test_batch_recipe_audio_jobs_equal_argen_audio(model_dir, tmp_path):
    import json

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
jobs:
  - name: tunes
    modality: audio
    model: {model_dir}
    prompts: ["sine C4 E4 at 100 bpm", "saw G3"]
    seeds: [0, 1]
    output: "{{job}}/{{prompt_index}}-{{seed}}.flac"
""")
    out = tmp_path / "out"
    assert main(["run", str(recipe), "-o", str(out), "-q"]) == 0
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sum(r["status"] == "done" for r in rows) == 4
    single = tmp_path / "single.flac"
    assert main(["audio", "--model", str(model_dir), "-p", "sine C4 E4 at 100 bpm", "--seed", "1", "-o", str(single), "-q"]) == 0
    assert np.array_equal(read_audio(out / "tunes" / "0-1.flac", SR), read_audio(single, SR))


BUNDLED = __import__("pathlib").Path(__file__).resolve().parents[1] / "weights" / "melodies-audio"


@pytest.mark.skipif(not (BUNDLED / "model.safetensors").is_file(), reason="bundled audio model not trained yet")
def test_bundled_model_plays_the_prompted_notes(tmp_path):
    """The default model at its default settings (no --model, no --cfg): the WAV has the melody's
    length, and the analyser hears far more of the prompted notes and waveforms than chance (1 in
    40 notes, 1 in 4 waveforms) would give: 10 of these 12 notes and 3 of 3 waveforms now."""
    from argen.lab.analysis.melodies import analyse

    right = waves = 0
    for i, prompt in enumerate(["square C4 E4 G4 C5 at 120 bpm", "saw A3 C4 E4 A4 at 100 bpm", "sine G3 B3 D4 G4 at 90 bpm"]):
        out = tmp_path / f"tune{i}.wav"
        assert main(["audio", "--prompt", prompt, "--seed", "0", "-o", str(out), "-q"]) == 0
        samples = read_audio(out, 16_000)
        melody = melodies.parse_prompt(prompt)
        assert abs(len(samples) / 16_000 - melody.seconds) <= 0.02
        heard = analyse(samples, melody)
        right += sum(heard["notes_ok"])
        waves += heard["wave_ok"]
    assert right >= 8 and waves >= 2
