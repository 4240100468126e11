"""MusicGen on argen's engine against transformers on the same weights: tiny random checkpoints
(mono, stereo, melody) saved by ``save_pretrained`` in the official layout, loaded by argen."""

import musicgen_fixtures as fx
import numpy as np
import pytest
import torch
from musicgen_fixtures import one_thread  # noqa: F401 (an autouse fixture)

from argen.engine.sampling.processors import SamplingConfig
from argen.modalities.audio.musicgen.chroma import chromagram
from argen.modalities.audio.musicgen.model import MusicGen

GREEDY = SamplingConfig(temperature=0.0, cfg_scale=3.0)
PROMPTS = ["lo-fi beat with piano", "calm strings"]  # different lengths: the batch pads one


@pytest.fixture(scope="module", params=["mono", "stereo", "melody"])
def pair(request, tmp_path_factory):
    """(transformers model, argen model, kind) on the same random weights."""
    hf = fx.build(request.param)
    folder = fx.save(hf, tmp_path_factory.mktemp(request.param))
    return hf, MusicGen.from_pretrained(folder), request.param, folder


def tune(seconds: float = 0.6) -> np.ndarray:
    """A two-note tune at the tiny codec's rate (a melody, and an audio prompt to continue)."""
    t = np.arange(int(seconds * fx.RATE)) / fx.RATE
    return (0.5 * np.sin(2 * np.pi * np.where(t < seconds / 2, 220.0, 330.0) * t)).astype(np.float32)


def prompts_for(kind: str) -> list[str]:
    # transformers' melody model attends to the zero vectors of a padded prompt (its output
    # depends on the batch); argen masks them, so the two agree on unpadded batches only
    return PROMPTS[:1] if kind == "melody" else PROMPTS


def hf_codes(hf, kind: str, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' generate: (codes (B, K, F) as handed to EnCodec, audio (B, C, T))."""
    seen = []
    decode = hf.audio_encoder.decode

    def spy(codes, *a, **k):
        seen.append(codes[0].clone())  # (B, K/C, F)
        return decode(codes, *a, **k)

    hf.audio_encoder.decode = spy
    try:
        with torch.inference_mode():
            audio = hf.generate(do_sample=False, guidance_scale=3.0, **kw)
    finally:
        hf.audio_encoder.decode = decode
    codes = seen[0] if len(seen) == 1 else torch.stack(seen, 2).flatten(1, 2)  # stereo: left, right per codebook
    return codes, audio


def test_decoder_logits_per_codebook_match_transformers(pair):
    hf, mg, kind, folder = pair
    prompts = prompts_for(kind)
    b, k, v, t = len(prompts), mg.spec.n_codebooks, mg.spec.codebook_size, 9
    torch.manual_seed(1)
    ids = torch.randint(0, v, (b, k, t))
    ids[:, :, 0] = v  # BOS
    inp = fx.text_inputs(folder, prompts)
    wav = tune()
    extra = {"input_features": chromagram(wav, fx.RATE)[None]} if kind == "melody" else {}
    with torch.inference_mode():
        ref = hf(**inp, **extra, decoder_input_ids=ids.reshape(b * k, t)).logits[:, -t:].view(b, k, t, v)
        cond = mg.conditioning(mg._text_states(prompts), guided=False, melody=wav if kind == "melody" else None)
        ours = mg.logits(ids.transpose(1, 2), cond)
    assert ref.abs().amax() > 1.0  # peaked enough that a wrong layer would show
    assert (ours - ref).abs().amax() <= 1e-4


def test_greedy_guided_tokens_and_waveform_equal_transformers(pair):
    hf, mg, kind, folder = pair
    prompts, n_new = prompts_for(kind), 24
    wav = tune()
    extra = {"input_features": chromagram(wav, fx.RATE)[None]} if kind == "melody" else {}
    ref_codes, ref_audio = hf_codes(hf, kind, **fx.text_inputs(folder, prompts), **extra,
                                    max_new_tokens=n_new + max(mg.spec.delays()))
    codes = mg.generate_codes(prompts, list(range(len(prompts))), n_new / 50, GREEDY,
                              melody=wav if kind == "melody" else None)
    assert codes.shape == ref_codes.shape == (len(prompts), mg.spec.n_codebooks, n_new)
    assert torch.equal(codes, ref_codes)
    assert len(torch.unique(codes)) > 8  # the streams vary: not one token repeated
    audio = mg.generate(prompts, list(range(len(prompts))), n_new / 50, GREEDY, melody=wav if kind == "melody" else None)
    assert audio[0].shape == (mg.channels, n_new * fx.HOP) and audio[0].dtype == np.float32
    assert np.abs(np.stack(audio) - ref_audio.numpy()).max() <= 1e-4


def test_continuation_equals_transformers_from_the_same_audio_prompt(pair):
    hf, mg, kind, folder = pair
    prompts, n_new = prompts_for(kind), 12
    clip = tune(0.31)  # 496 samples: 15.5 frames, coded as 16
    if kind == "stereo":
        clip = np.stack([clip, -0.5 * clip])  # (2, T): the two sides differ
    inp = fx.text_inputs(folder, prompts)
    b, max_d = len(prompts), max(mg.spec.delays())
    if kind == "melody":  # transformers' melody model takes the prompt's codes, not its samples
        known = mg.codec.encode(clip[None])
        extra = {"decoder_input_ids": known.repeat(b, 1)}
    else:
        audio_in = torch.from_numpy(clip).reshape(1, mg.channels, -1).repeat(b, 1, 1)
        extra = {"input_values": audio_in}
    ref_codes, ref_audio = hf_codes(hf, kind, **inp, **extra, max_new_tokens=n_new + max_d)
    audio = mg.generate(prompts, list(range(b)), n_new / 50, GREEDY, audio_prompt=clip)
    codes = mg.generate_codes(prompts, list(range(b)), n_new / 50, GREEDY, audio_prompt=clip)
    f0 = mg.codec.encode(clip if clip.ndim == 2 else clip[None]).shape[1]
    assert codes.shape[2] == f0 + n_new == ref_codes.shape[2]
    assert mg.new_audio_offset(clip.shape[-1]) == f0 * fx.HOP == audio[0].shape[-1] - n_new * fx.HOP
    assert torch.equal(codes, ref_codes)
    assert np.abs(np.stack(audio) - ref_audio.numpy()).max() <= 1e-4


def test_cached_decoding_equals_uncached(pair):
    _, mg, kind, _ = pair
    sampling = SamplingConfig(temperature=1.0, top_k=20, cfg_scale=3.0)
    a = mg.generate_codes(PROMPTS, [5, 6], 0.2, sampling)
    b = mg.generate_codes(PROMPTS, [5, 6], 0.2, sampling, use_cache=False)
    assert torch.equal(a, b)
