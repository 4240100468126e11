"""`--quantize int8` on every released autoregressive family whose decoder is argen's transformer
(Janus-Pro, LlamaGen text-to-image and class-conditional, MusicGen, MeshXL, LLaMA-Mesh), on tiny
random models in each family's official layout (built as the family's own tests build them):
logits close to float32, greedy choices the same, a CLI run writes a valid file that records
the quantisation, and the families that cannot take it refuse it in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

import musicgen_fixtures as fx  # noqa: E402
from musicgen_fixtures import one_thread  # noqa: E402,F401 (an autouse fixture: one thread)

from argen.engine.quantize import Int8Linear  # noqa: E402
from argen.io.metadata import read_metadata  # noqa: E402
from tests.test_llama_mesh import _llama_folder, bpe  # noqa: E402,F401 - bpe is a fixture
from tests.test_meshxl import _folder, _opt, _seqs  # noqa: E402

# Relative error ||int8 - float32|| / ||float32|| of a model's logits. Rounding each weight to one of
# 255 levels per output channel costs 0.5% to 3.3% on these tiny random models (measured: MeshXL
# 0.9%, LlamaGen C2I 0.7%, MusicGen 1.6%, Janus 2.2%, LlamaGen T2I 3.3%); bfloat16 activations (the
# CPU default) add under 1% (Janus 2.8%). A quantiser that gives each channel another channel's
# scale (test_the_tolerance_catches_a_broken_quantiser) is off by over 20%.
TOL_F32 = 0.05  # int8 weights, float32 activations
TOL_BF16 = 0.08  # int8 weights, bfloat16 activations


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    got, ref = got.float(), ref.float()
    return ((got - ref).norm() / ref.norm()).item()


def same_argmax(got: torch.Tensor, ref: torch.Tensor) -> float:
    """Share of positions whose most likely token is the same (teacher-forced greedy choices)."""
    return (got.argmax(-1) == ref.argmax(-1)).float().mean().item()


def int8_layers(model: torch.nn.Module) -> int:
    return sum(isinstance(m, Int8Linear) for m in model.modules())


# ---------------------------------------------------------------------------------------- Janus
@pytest.fixture(scope="module")
def janus(tmp_path_factory) -> Path:
    from tests.janus_tiny import save_tiny_janus

    folder = tmp_path_factory.mktemp("janus") / "tiny-janus"
    save_tiny_janus(folder)
    return folder


def test_janus_int8_logits_and_greedy_tokens_stay_close(janus):
    from argen.engine.sampling.processors import SamplingConfig
    from argen.modalities.image.janus.pipeline import JanusImage
    from tests.test_janus import PROMPTS as prompts

    fp = JanusImage.from_pretrained(janus)
    k = fp.spec.codebook_size
    img = torch.randint(0, k, (2, fp.num_tokens), generator=torch.Generator().manual_seed(4))
    seq = torch.cat([torch.tensor(fp.prompt_ids(prompts)) + k, img], 1)
    greedy = SamplingConfig(temperature=0.0, cfg_scale=5.0)
    with torch.no_grad():
        ref = fp.model(seq)
        for dtype, tol in ((torch.float32, TOL_F32), (torch.bfloat16, TOL_BF16)):
            q = JanusImage.from_pretrained(janus, dtype=dtype, quantize="int8")
            got = q.model(seq)
            assert rel_err(got, ref) < tol and same_argmax(got, ref) > 0.9, (dtype, rel_err(got, ref))
        # blocks (7 linears each) and the generation head; the tied, unused text head stays float
        assert int8_layers(q.model) == 7 * fp.spec.text.n_layer + 2 and not isinstance(q.model.lm.lm_head, Int8Linear)
        q = JanusImage.from_pretrained(janus, quantize="int8")
        a, b = fp.sample_tokens(prompts, seeds=[0, 1], sampling=greedy), q.sample_tokens(prompts, seeds=[0, 1], sampling=greedy)
    assert (a == b).float().mean() > 0.8


def test_janus_cli_int8_writes_a_png_that_records_it(janus, cli, tmp_path):
    out = tmp_path / "cat.png"
    code, _, err = cli("image", "--model", janus, "-p", "a red cat", "--seed", "0", "--quantize", "int8", "-o", out, "-q")
    assert code == 0, err
    from PIL import Image

    with Image.open(out) as im:
        assert im.size[0] == im.size[1] > 0
    meta = read_metadata(out)
    assert (meta["quantize"], meta["dtype"], meta["family"]) == ("int8", "bfloat16", "janus")
    code, _, err = cli("image", "--model", janus, "-p", "a red cat", "--seed", "0", "--dtype", "float32",
                       "-o", tmp_path / "fp.png", "-q")
    assert code == 0 and "quantize" not in read_metadata(tmp_path / "fp.png"), err


# -------------------------------------------------------------------------------- LlamaGen (T2I)
@pytest.fixture(scope="module")
def t2i(tmp_path_factory) -> Path:
    import argparse

    from argen.modalities.image.llamagen_t2i.load import convert_llamagen_t2i
    from tests import llamagen_t2i_weights as W
    from tests.test_llamagen_t2i import TINY

    d = tmp_path_factory.mktemp("t2i")
    torch.save({"model": W.gpt_state(), "args": argparse.Namespace(gpt_model="GPT-tiny")}, d / "t2i.pt")
    torch.save({"model": {**W.vq_state(), "quantize.codebook_used": torch.zeros(65536)}}, d / "vq.pt")
    return convert_llamagen_t2i(d / "t2i.pt", d / "vq.pt", d / "converted", image_size=8, cfg=TINY, vq_cfg=W.vq_config())


def test_llamagen_t2i_int8_logits_stay_close_and_the_cli_records_it(t2i, cli, tmp_path, monkeypatch):
    from argen.modalities.image.llamagen_t2i import pipeline as t2i_pipeline
    from argen.modalities.image.llamagen_t2i.pipeline import LlamaGenT2IImage
    from tests.test_llamagen_t2i import FakeT5, fake_t5

    fp = LlamaGenT2IImage.from_pretrained(t2i, text_encoder=fake_t5)
    q = LlamaGenT2IImage.from_pretrained(t2i, text_encoder=fake_t5, quantize="int8")
    assert q.dtype == torch.float32 and int8_layers(q.model.gpt) == 7 * q.model.gpt.cfg.n_layer + 1
    caps, valid = fake_t5(["a red apple", "a green pear"])
    ids = torch.randint(0, fp.model.t2i.vocab_size, (2, fp.num_tokens), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref_b, got_b = fp.model.bind(caps, valid.bool()), q.model.bind(caps, valid.bool())
        seq = torch.cat([torch.tensor(ref_b.prompts()), ids], 1)
        ref, got = ref_b(seq), got_b(seq)
    assert rel_err(got, ref) < TOL_F32 and same_argmax(got, ref) > 0.9, rel_err(got, ref)
    monkeypatch.setattr(t2i_pipeline, "T5CaptionEncoder", FakeT5)
    out = tmp_path / "apple.png"
    code, _, err = cli("image", "--model", t2i, "-p", "a red apple", "--seed", "1", "--quantize", "int8", "-o", out, "-q")
    assert code == 0, err
    assert (read_metadata(out)["quantize"], read_metadata(out)["dtype"]) == ("int8", "bfloat16")


# -------------------------------------------------------------------------------- LlamaGen (C2I)
def test_llamagen_class_model_takes_int8_and_var_refuses_it(tmp_path, cli):
    import argen
    from argen.modalities.image.llamagen.convert import convert_llamagen
    from argen.modalities.image.llamagen.vq import LlamaGenVQ
    from tests.test_llamagen import SMALL_VQ, official_gpt_state, small_cfg

    torch.manual_seed(0)
    vq = LlamaGenVQ(SMALL_VQ).eval()
    torch.save({"model": {**vq.state_dict(), "quantize.codebook_used": torch.zeros(65536)}}, tmp_path / "vq.pt")
    torch.save({"model": official_gpt_state()}, tmp_path / "gpt.pt")
    folder = convert_llamagen(tmp_path / "vq.pt", tmp_path / "gpt.pt", tmp_path / "c2i", cfg=small_cfg(), vq_cfg=SMALL_VQ)
    fp = argen.load(str(folder), device="cpu", dtype="float32")
    q = argen.load(str(folder), device="cpu", dtype="float32", quantize="int8")
    ids = torch.randint(0, fp.model.cfg.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, got = fp.model(ids), q.model(ids)
    assert int8_layers(q.model) > 0 and rel_err(got, ref) < TOL_F32 and same_argmax(got, ref) > 0.9
    out, = q("3", seed=0)
    assert out.metadata["quantize"] == "int8" and "quantize" not in fp("3", seed=0)[0].metadata
    from types import SimpleNamespace

    from argen.errors import UsageError
    from argen.modalities.image.class_pipeline import ClassImagePipeline

    with pytest.raises(UsageError, match="^VAR models take no --quantize$"):  # refused before any file is read
        ClassImagePipeline.from_ref(SimpleNamespace(name="var-d16", path=tmp_path / "absent"), {"family": "var"},
                                    quantize="int8")


# ------------------------------------------------------------------------------------- MusicGen
@pytest.fixture(scope="module")
def musicgen(tmp_path_factory) -> Path:
    return fx.save(fx.build("mono"), tmp_path_factory.mktemp("mono"))


def test_musicgen_int8_covers_cross_attention_and_keeps_its_logits(musicgen):
    from argen.modalities.audio.musicgen.model import MusicGen

    fp = MusicGen.from_pretrained(musicgen)
    q = MusicGen.from_pretrained(musicgen, quantize="int8")
    block = q.decoder.layers[0]
    assert all(isinstance(getattr(block.cross, n), Int8Linear) for n in ("q_proj", "k_proj", "v_proj", "o_proj"))
    assert isinstance(q.decoder.lm_head, Int8Linear)
    b, k, v, t = 2, fp.spec.n_codebooks, fp.spec.codebook_size, 9
    ids = torch.randint(0, v, (b, k, t), generator=torch.Generator().manual_seed(1))
    ids[:, :, 0] = v  # BOS
    prompts = ["lo-fi beat with piano", "calm strings"]
    with torch.inference_mode():
        ref = fp.logits(ids.transpose(1, 2), fp.conditioning(fp._text_states(prompts), guided=False))
        got = q.logits(ids.transpose(1, 2), q.conditioning(q._text_states(prompts), guided=False))
    assert rel_err(got, ref) < TOL_F32 and same_argmax(got, ref) > 0.9, rel_err(got, ref)


def test_musicgen_cli_int8_writes_audio_that_records_it(musicgen, cli, tmp_path):
    from argen.io.audio import read_audio, read_audio_metadata

    out = tmp_path / "beat.wav"
    code, _, err = cli("audio", "--model", musicgen, "-p", "lo-fi beat", "--seconds", "0.4", "--seed", "3",
                       "--quantize", "int8", "-o", out, "-q")
    assert code == 0, err
    samples = read_audio(out, fx.RATE)
    assert samples.shape[-1] == round(0.4 * fx.RATE) and np.isfinite(samples).all()
    meta = read_audio_metadata(out)
    assert (meta["quantize"], meta["dtype"]) == ("int8", "bfloat16")


# ---------------------------------------------------------------------------------- MeshXL
def test_meshxl_int8_logits_greedy_and_a_category_switch(tmp_path):
    from argen.engine.sampling.processors import SamplingConfig
    from argen.modalities.mesh.meshxl.model import MeshXL
    from tests.test_mesh_families_cli import _fine_tune

    folder = _folder(tmp_path / "mesh-xl-125m", _opt())
    _fine_tune(folder / "meshxl-125m-chair.pth", seed=9)
    fp, q = MeshXL.from_pretrained(folder), MeshXL.from_pretrained(folder, quantize="int8")
    seqs = _seqs()
    greedy = SamplingConfig(temperature=0.0)
    with torch.no_grad():
        ref, got = fp.model(seqs), q.model(seqs)
        assert rel_err(got, ref) < TOL_F32 and same_argmax(got, ref) > 0.9, rel_err(got, ref)
        a = fp.sample(2, max_faces=6, sampling=greedy)
        b = q.sample(2, max_faces=6, sampling=greedy)
        assert np.mean([x == y for s, t in zip(a, b) for x, y in zip(s.tokens, t.tokens)]) > 0.8
        # a fine-tune is put in as float weights, then quantised again
        fp.sample(1, category="chair", max_faces=2), q.sample(1, category="chair", max_faces=2)
        ref, got = fp.model(seqs), q.model(seqs)
    assert int8_layers(q.model) > 0 and rel_err(got, ref) < TOL_F32


# ------------------------------------------------------------------------------- LLaMA-Mesh
def test_llama_mesh_int8_logits_stay_close(tmp_path, bpe):  # noqa: F811
    from argen.modalities.mesh.llama_mesh.model import LlamaMesh

    folder = _llama_folder(tmp_path / "LLaMA-Mesh", bpe)
    fp, q = LlamaMesh.from_pretrained(folder), LlamaMesh.from_pretrained(folder, quantize="int8")
    ids = torch.randint(0, fp.model.cfg.vocab_size, (2, 30), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref, got = fp.model(ids), q.model(ids)
    assert int8_layers(q.model) == 7 * 2 + 1 and rel_err(got, ref) < TOL_F32 and same_argmax(got, ref) > 0.9


@pytest.mark.parametrize("family", ["meshxl", "llama-mesh"])
def test_mesh_cli_int8_writes_a_valid_mesh_that_records_it(family, cli, tmp_path, bpe):  # noqa: F811
    import trimesh

    if family == "meshxl":
        folder, args = _folder(tmp_path / "mesh-xl-125m", _opt()), ["--max-faces", "5"]
    else:
        folder, args = _llama_folder(tmp_path / "LLaMA-Mesh", bpe), ["-p", "a chair", "--max-new-tokens", "60"]
        config = json.loads((folder / "config.json").read_text())  # as the released folder names itself
        (folder / "config.json").write_text(json.dumps({**config, "_name_or_path": "Zhengyi/LLaMA-Mesh"}))
    out = tmp_path / "m.obj"
    code, _, err = cli("mesh", "--model", folder, *args, "--seed", "0", "--quantize", "int8", "-o", out, "-q")
    assert code == 0, err
    assert len(trimesh.load(out, force="mesh").faces) >= 1
    meta = read_metadata(out)
    assert (meta["quantize"], meta["dtype"]) == ("int8", "bfloat16")


# -------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("args, name, who", [
    (["image", "-p", "a red circle"], "x.png", "bundled image models"),
    (["audio", "-p", "sine C4 at 120 bpm", "--seconds", "0.2"], "x.wav", "bundled audio models"),
    (["mesh", "-p", "a cube", "--max-faces", "4"], "x.obj", "bundled mesh models"),
    (["video", "-p", "a red circle", "--frames", "2", "--steps", "1"], "x.mp4", "video models"),
    (["crystal", "--composition", "SrTiO3"], "x.cif", "crystal models"),
    (["text", "--model", "shakespeare-bd3", "-p", "ROMEO:"], "x.txt", "block-diffusion models"),
])
def test_families_that_cannot_take_int8_refuse_it_in_one_line(args, name, who, cli, tmp_path):
    code, _, err = cli(*args, "--quantize", "int8", "-o", tmp_path / name)
    lines = err.strip().splitlines()
    assert code == 2 and lines[0] == f"Error: {who} take no --quantize", lines
    assert not list(tmp_path.iterdir())


def test_the_tolerance_catches_a_broken_quantiser():
    """The tolerances above are tight enough: int8 weights with their scales mixed up fail them."""
    from conftest import tiny_model

    from argen.engine.quantize import quantize_int8

    m = tiny_model(sharp=30)
    x = torch.randint(50, (2, 30))
    with torch.no_grad():
        ref = m(x)
        q = quantize_int8(m)
        good = q(x)
        for lin in [m for m in q.modules() if isinstance(m, Int8Linear)]:
            lin.scales = lin.scales.flip(0)  # each channel with another channel's scale
        bad = q(x)
    assert rel_err(good, ref) < TOL_F32 < TOL_BF16 < rel_err(bad, ref)


def test_a_refusal_lists_every_option_and_none_is_no_request():
    from argen.errors import UsageError
    from argen.modalities.base import refuse_options

    refuse_options({"quantize": "none"}, "video")  # every spec's default: nothing asked
    with pytest.raises(UsageError, match=r"^video models take no --quantize, --sampler$"):
        refuse_options({"quantize": "int8", "sampler": "x"}, "video")


def test_int8_means_bfloat16_activations_on_cpu_unless_a_dtype_is_named():
    from argen.engine.device import resolve_dtype

    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu, "int8") == torch.bfloat16
    assert resolve_dtype("auto", cpu) == resolve_dtype("float32", cpu, "int8") == torch.float32


def test_an_unknown_mode_is_one_line(cli, tmp_path):
    code, _, err = cli("mesh", "-p", "a cube", "--quantize", "int4", "-o", tmp_path / "x.obj")
    assert code == 2 and err.strip().splitlines()[0] == "Error: --quantize 'int4': input should be 'none' or 'int8'"
    assert json.dumps(sorted(p.name for p in tmp_path.iterdir())) == "[]"
