"""MusicGen's Python API: seeds per row, the window plan past 30 s, melody chroma, the delay
pattern, and one clear error per bad input."""

import shutil

import musicgen_fixtures as fx
import numpy as np
import pytest
import torch
from musicgen_fixtures import one_thread  # noqa: F401 (an autouse fixture)

from argen.engine.sampling.processors import SamplingConfig
from argen.errors import ArgenError, UsageError
from argen.modalities.audio.musicgen import config as mg_config
from argen.modalities.audio.musicgen import delay
from argen.modalities.audio.musicgen.chroma import chromagram
from argen.modalities.audio.musicgen.config import MusicGenSpec, matches
from argen.modalities.audio.musicgen.model import MusicGen

SAMPLED = SamplingConfig(temperature=1.0, top_k=20, cfg_scale=3.0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {kind: fx.save(fx.build(kind), tmp_path_factory.mktemp(kind)) for kind in ("mono", "melody")}


@pytest.fixture(scope="module")
def mono(folders):
    return MusicGen.from_pretrained(folders["mono"])


@pytest.fixture(scope="module")
def melody(folders):
    return MusicGen.from_pretrained(folders["melody"])


def test_facts_and_published_defaults(mono, melody, folders):
    assert (mono.sample_rate, mono.channels, mono.has_text_encoder, mono.has_melody) == (fx.RATE, 1, True, False)
    assert melody.has_melody and melody.has_text_encoder
    assert mono.defaults == {"temperature": 1.0, "top_k": 250, "top_p": None, "cfg_scale": 3.0}
    SamplingConfig(**mono.defaults)  # valid settings
    cfg = __import__("json").loads((folders["mono"] / "config.json").read_text())
    assert matches(cfg) and not matches({"model_type": "llama"}) and not matches(cfg["decoder"])


@pytest.mark.parametrize("model", ["mono", "melody"])
def test_a_row_is_the_same_alone_or_in_a_batch(model, request):
    mg = request.getfixturevalue(model)
    tune = np.sin(np.arange(fx.RATE) * 2 * np.pi * 440 / fx.RATE).astype(np.float32)
    kw = {"melody": tune} if model == "melody" else {}
    batch = mg.generate_codes(["calm strings", "lo-fi beat with piano", None], [7, 8, 9], 0.3, SAMPLED, **kw)
    alone = mg.generate_codes(["lo-fi beat with piano"], [8], 0.3, SAMPLED, **kw)
    again = mg.generate_codes(["lo-fi beat with piano"], [9], 0.3, SAMPLED, **kw)
    assert torch.equal(batch[1], alone[0])
    assert not torch.equal(alone, again)  # the seed matters
    assert not torch.equal(batch[0], batch[1])


def test_progress_counts_every_decoding_step(mono):
    seen = []
    mono.generate_codes([None], [0], 0.2, SAMPLED, on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 13) for i in range(1, 14)]  # 10 frames + 3 steps of delay


def test_windows_past_the_limit_follow_audiocraft(mono, monkeypatch):
    """With a 1 s window and a 0.6 s stride (30 and 18 s in the real models), 2 s of audio is
    three windows; each later window continues greedily from the last 0.4 s of the one before,
    exactly as a continuation from those codes would."""
    monkeypatch.setattr(mg_config, "MAX_DURATION_S", 1.0)
    monkeypatch.setattr(mg_config, "EXTEND_STRIDE_S", 0.6)
    greedy = SamplingConfig(temperature=0.0, cfg_scale=3.0)
    long = mono.generate_codes(["jazz drums"], [0], 2.0, greedy)[0]  # (K, 100)
    assert long.shape == (4, 100)
    first = mono.generate_codes(["jazz drums"], [0], 1.0, greedy)[0]
    assert torch.equal(long[:, :50], first)  # window 1: frames 0..49
    second = mono.generate_codes(["jazz drums"], [0], 0.6, greedy, prompt_codes=first[:, 30:])[0]
    assert torch.equal(long[:, 50:80], second[:, 20:])  # window 2 (frames 30..79) adds 50..79
    third = mono.generate_codes(["jazz drums"], [0], 0.4, greedy, prompt_codes=second[:, 30:])[0]
    assert torch.equal(long[:, 80:], third[:, 20:])  # window 3 (frames 60..99) adds 80..99


def test_a_tone_gives_its_pitch_class():
    sr = 32000
    t = np.arange(2 * sr) / sr
    chroma = chromagram(np.sin(2 * np.pi * 440.0 * t), sr)  # A4
    assert chroma.shape == (2 * sr // 4096 + 1, 12)
    assert torch.all(chroma.argmax(-1) == 9)  # C, C#, D, D#, E, F, F#, G, G#, A
    assert torch.all(chroma.sum(-1) == 1)


def test_melody_changes_the_melody_models_output(melody):
    t = np.arange(fx.RATE) / fx.RATE
    greedy = SamplingConfig(temperature=0.0, cfg_scale=3.0)
    a = melody.generate_codes(["calm strings"], [0], 0.4, greedy, melody=np.sin(2 * np.pi * 200 * t).astype(np.float32))
    b = melody.generate_codes(["calm strings"], [0], 0.4, greedy, melody=np.sin(2 * np.pi * 310 * t).astype(np.float32))
    assert not torch.equal(a, b)


def test_delay_pattern_round_trip_and_stereo_pairs():
    codes = torch.arange(12).view(4, 3)
    steps = delay.grid(codes, 3, [0, 1, 2, 3], pad=99)
    assert steps.shape == (7, 4) and torch.all(steps[0] == 99)
    assert steps[:, 3].tolist() == [99, 99, 99, 99, 9, 10, 11]
    assert torch.equal(delay.codes_from_steps(steps, [0, 1, 2, 3]), codes)
    prompt, forced = delay.split(delay.grid(codes[:, :1], 3, [0, 1, 2, 3], pad=99))
    assert prompt.shape == (2, 4) and forced[0].tolist() == [-1, 3, 99, 99]
    spec = MusicGenSpec.from_config({"model_type": "musicgen", "audio_encoder": {"codebook_size": 2048},
                                     "decoder": {"num_codebooks": 8, "audio_channels": 2}})
    assert spec.delays() == [0, 0, 1, 1, 2, 2, 3, 3]


# ---------------------------------------------------------------------------- errors

def test_bad_requests_are_one_line_usage_errors(mono):
    for seconds in (0, -1, 3600.5):
        with pytest.raises(UsageError, match="seconds"):
            mono.generate([None], [0], seconds)
    with pytest.raises(UsageError, match="melody"):
        mono.generate(["calm strings"], [0], 0.2, melody=np.zeros(100, np.float32))
    with pytest.raises(UsageError, match="seeds"):
        mono.generate(["calm strings"], [0, 1], 0.2)
    with pytest.raises(ArgenError, match="audio to extend"):
        mono.generate(["calm strings"], [0], 0.2, audio_prompt=np.full(100, np.nan, np.float32))


def test_a_prompt_for_a_model_without_text_encoder(folders, tmp_path):
    folder = tmp_path / "no-text"
    shutil.copytree(folders["mono"], folder)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (folder / f).unlink()
    mg = MusicGen.from_pretrained(folder)
    assert not mg.has_text_encoder
    with pytest.raises(UsageError, match="no text encoder"):
        mg.generate(["calm strings"], [0], 0.2)
    assert mg.generate([None], [0], 0.1)[0].shape == (1, 5 * fx.HOP)


def test_corrupt_or_foreign_checkpoints_are_clear_errors(folders, tmp_path):
    folder = tmp_path / "corrupt"
    shutil.copytree(folders["mono"], folder)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArgenError, match="safetensors"):
        MusicGen.from_pretrained(folder)
    with pytest.raises(ArgenError, match="not a MusicGen"):
        MusicGenSpec.from_config({"model_type": "llama", "hidden_size": 8})
    with pytest.raises(ArgenError, match="no config.json"):
        MusicGen.from_pretrained(tmp_path / "nowhere")


def test_a_2023_layout_checkpoint_loads_the_same(folders, mono, tmp_path):
    """The Hub's 2023 files name EnCodec's weight norm ``weight_g``/``weight_v`` and store the
    decoder's sinusoidal table: argen renames the first and checks, then drops, the second."""
    from safetensors.torch import load_file, save_file
    from transformers.models.musicgen.modeling_musicgen import MusicgenSinusoidalPositionalEmbedding

    folder = tmp_path / "old"
    shutil.copytree(folders["mono"], folder)
    state = load_file(str(folder / "model.safetensors"))
    old = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                              "weight_v"): v for k, v in state.items()}
    assert any(k.endswith("weight_g") for k in old)
    table = MusicgenSinusoidalPositionalEmbedding.get_embedding(512, mono.spec.d_model)
    save_file({**old, "decoder.model.decoder.embed_positions.weights": table}, str(folder / "model.safetensors"))
    greedy = SamplingConfig(temperature=0.0, cfg_scale=3.0)
    a = MusicGen.from_pretrained(folder).generate(["jazz drums"], [0], 0.2, greedy, audio_prompt=np.ones(64, np.float32))
    b = mono.generate(["jazz drums"], [0], 0.2, greedy, audio_prompt=np.ones(64, np.float32))
    assert np.array_equal(a[0], b[0])
    save_file({**old, "decoder.model.decoder.embed_positions.weights": table.flip(1)}, str(folder / "model.safetensors"))
    with pytest.raises(ArgenError, match="position table"):
        MusicGen.from_pretrained(folder)


def test_published_sampling_is_transformers_distribution():
    """Guidance 3 on the logits, temperature, top-k 250: argen's processors give the distribution
    transformers' logits processors give (so sampled runs differ only by the random draws)."""
    from transformers import ClassifierFreeGuidanceLogitsProcessor, LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper

    from argen.engine.sampling.processors import guide, probs_from_logits

    torch.manual_seed(0)
    logits = 3 * torch.randn(2, 4, 2048)  # (conditional row, its twin) x 4 codebooks x codes
    for temperature in (1.0, 0.7):
        cfg = SamplingConfig(temperature=temperature, top_k=250, cfg_scale=3.0)
        ours = probs_from_logits(guide(logits, 1, cfg, 0.0, 0), cfg)[0]  # (4, 2048)
        procs = LogitsProcessorList([ClassifierFreeGuidanceLogitsProcessor(3.0), TemperatureLogitsWarper(temperature),
                                     TopKLogitsWarper(250)])
        ref = procs(torch.zeros(4, 1, dtype=torch.long), logits.reshape(8, 2048)).softmax(-1)
        assert (ref > 0).sum(-1).tolist() == [250] * 4
        assert torch.allclose(ours, ref, atol=1e-6)


def test_a_bfloat16_decoder_is_close_to_float32(folders, mono):
    """``dtype=torch.bfloat16`` (half the weight bytes per step) stays close to float32."""
    half = MusicGen.from_pretrained(folders["mono"], dtype=torch.bfloat16)
    assert half.decoder.embed.weight.dtype == torch.bfloat16 and half.text.t5.dtype == torch.float32
    steps = torch.randint(0, fx.CODEBOOK, (2, 12, 4))
    with torch.inference_mode():
        texts = mono._text_states(["jazz drums", None])
        a = mono.logits(steps, mono.conditioning(texts, guided=False))
        b = half.logits(steps, half.conditioning(texts, guided=False))
    assert 0 < (a - b).abs().max() < 0.05 * a.abs().max()
    assert half.generate(["jazz drums"], [0], 0.1)[0].shape == (1, 5 * fx.HOP)
