"""The audio groundwork: melodies grammar and renderer, the analyser that `argen eval audio`
relies on, the codec's delay pattern and shapes, and audio file I/O through PyAV."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from argen.errors import ArgenError, UsageError
from argen.io.audio import check_audio_suffix, read_audio, read_audio_metadata, write_audio
from argen.io.metadata import build_metadata, read_metadata
from argen.lab.analysis.melodies import analyse, yin
from argen.lab.data import melodies
from argen.modalities.audio.codec import AudioCodec, CodecConfig, apply_delay, undo_delay

SR = melodies.SAMPLE_RATE


def test_prompt_grammar_round_trip():
    m = melodies.parse_prompt("square C4 E4 G4 C5 at 120 bpm")
    assert (m.wave, m.notes, m.bpm, m.bpm_stated) == ("square", [60, 64, 67, 72], 120, True)
    assert m.prompt() == "square C4 E4 G4 C5 at 120 bpm"
    assert melodies.parse_prompt("saw F#3").bpm == melodies.DEFAULT_BPM
    assert melodies.note_to_midi("A2") == 45 and melodies.note_to_midi("C6") == 84
    for i in range(50):
        prompt, _, mel = melodies.sample(0, i)
        assert melodies.parse_prompt(prompt) == mel


@pytest.mark.parametrize("prompt, word", [
    ("flute C4", "waveform"), ("sine H4", "not a note"), ("sine C7", "outside"), ("sine B#3", "not a note"),
    ("sine", "1 to 8"), ("sine C4 C4 C4 C4 C4 C4 C4 C4 C4", "1 to 8"), ("sine C4 at 300 bpm", "bpm"),
])
def test_bad_prompts_state_the_grammar(prompt, word):
    with pytest.raises(UsageError) as e:
        melodies.parse_prompt(prompt)
    assert word in str(e.value) and "sine|square|saw|triangle" in e.value.hint


def test_render_length_and_level():
    m = melodies.parse_prompt("triangle A4 B4 at 60 bpm")
    audio = melodies.render(m)
    assert audio.dtype == np.float32 and audio.shape == (2 * SR,)
    assert 0.3 < np.abs(audio).max() <= 0.6 + 1e-6


def test_yin_finds_pure_tones():
    for hz in (110.0, 261.63, 1046.5):
        x = np.sin(2 * np.pi * hz * np.arange(2048) / SR)
        assert abs(yin(x) / hz - 1) < 0.003
    assert np.isnan(yin(np.zeros(2048)))


def test_analyser_reads_ground_truth_clips():
    # the bar: 98% or better on the generator's own clips
    notes = ok = waves = 0
    tempo = []
    for i in range(120):
        _, audio, mel = melodies.sample(1, i, "val")
        r = analyse(audio, mel)
        notes += len(mel.notes)
        ok += sum(r["notes_ok"])
        waves += r["wave_ok"]
        if r["tempo_error"] is not None:
            tempo.append(r["tempo_error"] < 0.05)
    assert ok / notes >= 0.98 and waves / 120 >= 0.98 and np.mean(tempo) >= 0.98


def test_analyser_notices_wrong_pitch_and_wave():
    m = melodies.parse_prompt("square C4 E4 G4 at 100 bpm")
    played = melodies.render(melodies.parse_prompt("sine C4 F4 G4 at 100 bpm"))
    r = analyse(played, m)
    assert r["notes_ok"] == [True, False, True] and r["wave"] == "sine" and not r["wave_ok"]


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 8), t=st.integers(0, 12), b=st.integers(1, 3))
def test_delay_pattern_round_trip(k, t, b):
    codes = torch.randint(0, 50, (b, k, t))
    delayed = apply_delay(codes, pad_id=99)
    assert delayed.shape == (b, k, t + k - 1)
    assert torch.equal(undo_delay(delayed), codes)
    for q in range(k):  # codebook q waits q steps and stops q steps early
        assert (delayed[:, q, :q] == 99).all() and (delayed[:, q, q + t:] == 99).all()


@pytest.mark.parametrize("act", ["elu", "snake"])
def test_codec_shapes(act):
    cfg = CodecConfig(channels=[4, 8], strides=[4, 5], latent_dim=8, n_codebooks=3, codebook_size=16, activation=act)
    codec = AudioCodec(cfg).eval()
    wav = torch.randn(2, 1000)
    codes = codec.encode(wav)
    assert codes.shape == (2, 3, 50) and codes.dtype == torch.long and int(codes.max()) < 16
    assert codec.decode(codes).shape == (2, 50 * cfg.hop)
    rec, commit = codec.train()(wav)
    assert rec.shape == (2, 1000) and commit.ndim == 0
    alphas = [k for k in codec.state_dict() if k.endswith("alpha")]
    assert bool(alphas) == (act == "snake")  # an ELU codec keeps the bundled codec's keys


def test_snake_is_periodic_and_learns_its_frequency():
    from argen.modalities.audio.codec import Snake

    snake = Snake(2)
    with torch.no_grad():
        snake.alpha[0, 1] = 3.0
    x = torch.linspace(-4, 4, 101).expand(1, 2, 101)
    y = snake(x)
    assert torch.allclose(y[0, 0], x[0, 0] + torch.sin(x[0, 0]) ** 2)
    shifted = snake(x + torch.tensor([0.0, torch.pi / 3])[None, :, None])  # the second channel's period
    assert torch.allclose(shifted[0, 1] - x[0, 1] - torch.pi / 3, y[0, 1] - x[0, 1], atol=1e-5)
    y.sum().backward()
    assert snake.alpha.grad is not None and snake.alpha.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="activation must be one of elu, snake"):
        CodecConfig(activation="relu")


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".ogg"])
def test_every_format_reopens_with_its_duration_and_metadata(tmp_path, suffix):
    _, audio, _ = melodies.sample(0, 5, "val")
    path = write_audio(tmp_path / f"clip{suffix}", audio, SR, build_metadata(prompt="x", seed=3))
    back = read_audio(path, SR)
    assert abs(len(back) - len(audio)) <= 320  # within one codec frame
    assert read_metadata(path)["seed"] == 3
    if suffix in (".wav", ".flac"):  # lossless: 16-bit quantisation only
        assert np.abs(back - audio).max() < 1e-4
    assert not list(tmp_path.glob("*.part"))


def test_bad_audio_inputs(tmp_path):
    with pytest.raises(ArgenError, match="not found"):
        read_audio(tmp_path / "missing.wav", SR)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00junk" * 10)
    with pytest.raises(ArgenError, match="not a readable audio file|no audio"):
        read_audio(junk, SR)
    with pytest.raises(UsageError, match="cannot write audio"):
        check_audio_suffix(tmp_path / "out.xyz")
    assert read_audio_metadata(junk) is None


def _silent_video(path):
    """A 4-frame H.264 clip with no audio stream."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(4):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_video_without_audio_is_refused(tmp_path):
    with pytest.raises(ArgenError, match="no audio stream"):
        read_audio(_silent_video(tmp_path / "silent.mp4"), SR)


def test_codebooks_seeded_from_features_quantise_them_closely():
    cfg = CodecConfig(channels=[4, 8], strides=[4, 5], latent_dim=8, n_codebooks=3, codebook_size=64)
    rvq = AudioCodec(cfg).quantizer
    z = torch.randn(4, 8, 50) * 5  # features far from the noise the codebooks start as
    before = (rvq.quantize(z)[0] - z).pow(2).mean()
    rvq.init_from(z, torch.Generator().manual_seed(0))
    after = (rvq.quantize(z)[0] - z).pow(2).mean()
    assert after < 0.5 * before
