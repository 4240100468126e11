"""--compile's graph-mode decode path (tests/graph_mode.py: forced on the CPU in its eager form)
gives the default path's tokens for the released autoregressive families on tiny random weights
(LlamaGen class- and text-to-image and Janus with their CFG, MusicGen with its cross-attention
memory and melody prefix, MeshXL and LLaMA-Mesh under their grammars) and for speculative
decoding, whose draft steps run on the drafter's cache in graph mode."""

import musicgen_fixtures as fx
import numpy as np
import pytest
import torch
from conftest import tiny_model
from graph_mode import Calls, force_graphs

import argen
from argen.engine.sampling.processors import SamplingConfig
from argen.engine.sampling.speculative import LookupDrafter, ModelDrafter, speculative_generate
from argen.engine.sampling.window import ContextWindow

torch.set_num_threads(1)  # tiny models: threads only cost on a shared machine

GREEDY_CFG = SamplingConfig(temperature=0.0, cfg_scale=3.0)
SAMPLED_CFG = SamplingConfig(temperature=1.0, top_k=20, cfg_scale=3.0)


@pytest.fixture
def graphs(monkeypatch) -> Calls:
    return force_graphs(monkeypatch)


def same(calls: Calls, run):
    """``run(compile)`` without and with --compile: (default tokens, graph-mode tokens)."""
    plain = run(False)
    assert calls.graph_steps == 0
    graphed = run(True)
    assert calls.graph_steps > 0 and calls.compiled == []  # the graph step ran, nothing fell back
    calls.graph_steps = 0
    return plain, graphed


@pytest.mark.parametrize("sampling", [GREEDY_CFG, SAMPLED_CFG])
def test_llamagen_class_to_image(graphs, sampling):
    from test_llamagen import official_gpt_state, small_cfg

    from argen.checkpoints.argen_format import build_model
    from argen.modalities.image.llamagen.gpt import from_llamagen_state
    from argen.modalities.image.llamagen.sampling import sample_llamagen_tokens

    cfg = small_cfg()
    gpt = build_model(cfg, from_llamagen_state(official_gpt_state(), cfg), "test")
    plain, graphed = same(graphs, lambda c: sample_llamagen_tokens(gpt, [1, 7], sampling, seed=0, compile=c))
    assert torch.equal(plain, graphed)


@pytest.mark.parametrize("sampling", [GREEDY_CFG, SAMPLED_CFG])
def test_llamagen_text_to_image(graphs, sampling, tmp_path):
    import argparse

    from test_llamagen_t2i import TINY, fake_t5

    from argen.modalities.image.llamagen_t2i.load import convert_llamagen_t2i
    from argen.modalities.image.llamagen_t2i.pipeline import LlamaGenT2IImage
    from tests import llamagen_t2i_weights as W

    torch.save({"model": W.gpt_state(), "args": argparse.Namespace(gpt_model="GPT-tiny")}, tmp_path / "t2i.pt")
    torch.save({"model": {**W.vq_state(), "quantize.codebook_used": torch.zeros(65536)}}, tmp_path / "vq.pt")
    out = convert_llamagen_t2i(tmp_path / "t2i.pt", tmp_path / "vq.pt", tmp_path / "converted", image_size=8,
                               cfg=TINY, vq_cfg=W.vq_config())
    engine = LlamaGenT2IImage.from_pretrained(out, text_encoder=fake_t5)
    prompts = ["a red cat", "a big dog on a hill"]  # captions of unequal lengths: padded rows
    plain, graphed = same(graphs, lambda c: engine.sample_tokens(prompts, seeds=[4, 5], sampling=sampling, compile=c))
    assert torch.equal(plain, graphed)


@pytest.mark.parametrize("flags", [dict(temperature=0.0, cfg=3.0), dict(cfg=3.0, top_k=10)])
def test_janus_through_argen_load(graphs, flags, tmp_path):
    pytest.importorskip("transformers")
    from tests.janus_tiny import save_tiny_janus

    folder = tmp_path / "tiny-janus"
    save_tiny_janus(folder)
    pipe = argen.load(str(folder), device="cpu", compile=True)
    assert type(pipe).__name__ == "JanusPipeline" and pipe.compile

    def run(c):
        pipe.compile = c
        return [o.pixels for o in pipe("a photo of a cat", n=2, seed=0, **flags)]

    plain, graphed = same(graphs, run)
    assert all(np.array_equal(a, b) for a, b in zip(plain, graphed))


@pytest.mark.parametrize("kind", ["mono", "melody"])  # text memory (cross-attention); + melody prefix
@pytest.mark.parametrize("sampling", [GREEDY_CFG, SAMPLED_CFG])
def test_musicgen_with_its_conditioning(graphs, kind, sampling, tmp_path):
    from argen.modalities.audio.musicgen.model import MusicGen

    mg = MusicGen.from_pretrained(fx.save(fx.build(kind), tmp_path))
    tune = np.sin(np.arange(fx.RATE) * 2 * np.pi * 440 / fx.RATE).astype(np.float32) if kind == "melody" else None
    prompts = ["calm strings", "lo-fi beat with piano", None]
    plain, graphed = same(graphs, lambda c: mg.generate_codes(prompts, [7, 8, 9], 0.3, sampling, melody=tune,
                                                              compile=c))
    assert torch.equal(plain, graphed)


@pytest.mark.parametrize("greedy", [True, False])
def test_meshxl_under_its_constraint(graphs, greedy, tmp_path):
    from test_meshxl import _folder, _opt

    from argen.modalities.mesh.meshxl.model import MeshXL

    m = MeshXL.from_pretrained(_folder(tmp_path / "mesh-xl-125m", _opt()))
    sampling = SamplingConfig(temperature=0.0) if greedy else None
    plain, graphed = same(graphs, lambda c: [s.tokens for s in m.sample(2, seeds=[5, 1], max_faces=6,
                                                                         sampling=sampling, compile=c)])
    assert plain == graphed and all(plain)


@pytest.mark.parametrize("greedy", [True, False])
def test_llama_mesh_under_its_grammar(graphs, greedy, tmp_path):
    pytest.importorskip("transformers")
    import test_llama_mesh as lm
    import trimesh
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from argen.modalities.mesh.llama_mesh.model import LlamaMesh

    bpe = Tokenizer(models.BPE())  # test_llama_mesh's OBJ-trained BPE, on fewer meshes
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [lm._body(lm._reference_obj(mesh=trimesh.creation.box())), "Create a 3D model of a lamp. user assistant"]
    bpe.train_from_iterator(corpus * 4, trainers.BpeTrainer(vocab_size=400, special_tokens=lm.SPECIALS, show_progress=False,
                                                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    m = LlamaMesh.from_pretrained(lm._llama_folder(tmp_path / "llama-mesh", bpe))
    sampling = SamplingConfig(temperature=0.0) if greedy else None
    plain, graphed = same(graphs, lambda c: [s.tokens for s in m.sample(2, seeds=[3, 4], prompt="a lamp", max_faces=6,
                                                                         max_new_tokens=60, sampling=sampling,
                                                                         compile=c)])
    assert plain == graphed and all(plain)


@pytest.mark.parametrize("window", [None, 24])  # 24: both caches slide (the drafter's in graph mode)
@pytest.mark.parametrize("sampling", [SamplingConfig(temperature=0.0), SamplingConfig(temperature=0.9, top_k=20)])
def test_speculative_with_a_draft_model(graphs, sampling, window):
    target, draft = tiny_model(seed=0, sharp=4.0), tiny_model(seed=1, sharp=4.0)
    prompt = [1, 2, 3, 4, 5, 6]

    def run(c):
        capacity = window or len(prompt) + 40 + 4 + 1
        drafter = ModelDrafter(draft, sampling, capacity, compile=c)
        gen = None if sampling.greedy else torch.Generator().manual_seed(0)
        return speculative_generate(target, prompt, 40, drafter, sampling, k=4, generator=gen, compile=c,
                                    window=None if window is None else ContextWindow(window))

    (plain, p_stats) = run(False)
    (graphed, g_stats) = run(True)
    assert graphs.graph_steps > 0  # the draft's one-token steps
    assert graphs.compiled == ["decode"]  # the target's verify: dynamic shapes, not graph-captured
    assert graphed == plain and len(plain) == 40
    assert (g_stats.proposed, g_stats.accepted) == (p_stats.proposed, p_stats.accepted)


def test_speculative_lookup_and_the_text_pipeline(graphs):
    target = tiny_model(seed=0, sharp=4.0)
    prompt = [1, 2, 3, 1, 2, 3, 1, 2]
    s = SamplingConfig(temperature=0.9)

    def run(c):
        return speculative_generate(target, prompt, 20, LookupDrafter(2), s, k=3, compile=c,
                                    generator=torch.Generator().manual_seed(2))[0]

    assert run(True) == run(False)
    assert graphs.compiled == ["decode"] and graphs.graph_steps == 0  # lookup drafts need no model step
    pipe = argen.load("shakespeare-char", device="cpu", compile=True)  # --compile reaches both models
    out = pipe("ROMEO:", n=1, seed=0, max_new_tokens=24, draft="shakespeare-char-draft")
    assert graphs.graph_steps > 0 and graphs.compiled == ["decode", "decode"]
    pipe.compile = False
    assert [o.text for o in out] == [o.text for o in pipe("ROMEO:", n=1, seed=0, max_new_tokens=24,
                                                              draft="shakespeare-char-draft")]
