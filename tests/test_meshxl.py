"""MeshXL on argen's engine: a tiny random ``OPTForCausalLM`` in MeshXL's layout (131-token
vocabulary, BOS 128 / EOS 129 / PAD 130, written with a released-style config.json that states
OPT's vocabulary and context instead) loads through argen and matches transformers' logits and
greedy sequences; post-norm and project_in/out OPT variants too; fine-tune checkpoints load
with ``weights_only``; bad requests are one-line errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from argen.engine.sampling.next_token import generate  # noqa: E402
from argen.engine.sampling.processors import SamplingConfig  # noqa: E402
from argen.engine.sampling.rules import token_rules  # noqa: E402
from argen.errors import ArgenError, UsageError  # noqa: E402
from argen.modalities.mesh.meshxl import tokenizer as tok  # noqa: E402
from argen.modalities.mesh.meshxl.constraint import follows_grammar  # noqa: E402
from argen.modalities.mesh.meshxl.convert import load_opt, read_checkpoint  # noqa: E402
from argen.modalities.mesh.meshxl.model import MeshXL, matches  # noqa: E402
from argen.modalities.mesh.metrics import mesh_metrics, summarize  # noqa: E402

TOL = 1e-4
POSITIONS = 256


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a shared machine two can be far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _opt(seed: int = 0, **kw) -> torch.nn.Module:
    """A random OPTForCausalLM in MeshXL's vocabulary; parameters re-drawn so that biases and
    norm weights are not the zeros/ones a mis-mapping could hide behind."""
    torch.manual_seed(seed)
    base = dict(vocab_size=tok.VOCAB, hidden_size=64, num_hidden_layers=2, ffn_dim=128, num_attention_heads=4,
                max_position_embeddings=POSITIONS, word_embed_proj_dim=64, do_layer_norm_before=True,
                activation_function="relu", bos_token_id=tok.BOS, eos_token_id=tok.EOS, pad_token_id=tok.PAD)
    model = transformers.OPTForCausalLM(transformers.OPTConfig(**{**base, **kw})).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(1.0 + 0.2 * noise if "layer_norm" in name and name.endswith("weight") else 0.15 * noise)
    return model


def _released_config(hf: torch.nn.Module, size: str = "125m") -> dict:
    """config.json as MeshXL released it: OPT's vocabulary and 2048 positions (not the model's)."""
    c = hf.config
    return {"_name_or_path": f"mesh-xl/mesh-xl-{size}", "activation_function": c.activation_function,
            "architectures": ["OPTForCausalLM"], "do_layer_norm_before": c.do_layer_norm_before,
            "ffn_dim": c.ffn_dim, "hidden_size": c.hidden_size, "max_position_embeddings": 2048,
            "model_type": "opt", "num_attention_heads": c.num_attention_heads,
            "num_hidden_layers": c.num_hidden_layers, "vocab_size": 50272, "word_embed_proj_dim": c.hidden_size,
            "bos_token_id": 2, "eos_token_id": 2, "pad_token_id": 1, "torch_dtype": "float16"}


def _folder(tmp: Path, hf: torch.nn.Module, **config) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save(hf.state_dict(), tmp / "pytorch_model.bin")  # a plain state dict, lm_head tied
    (tmp / "config.json").write_text(json.dumps({**_released_config(hf), **config}))
    return tmp


@pytest.fixture(scope="module")
def meshxl_dir(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    hf = _opt()
    return _folder(tmp_path_factory.mktemp("meshxl") / "mesh-xl-125m", hf), hf


def _seqs(b: int = 3, t: int = 40, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, tok.LEVELS, (b, t), generator=g)
    ids[:, 0] = tok.BOS
    return ids  # (B, T)


def test_logits_match_transformers(meshxl_dir):
    folder, hf = meshxl_dir
    m = MeshXL.from_pretrained(folder)
    assert m.model.cfg.vocab_size == tok.VOCAB and m.context == POSITIONS  # from the weights, not config.json
    assert m.max_faces_limit == (POSITIONS - 1) // 9
    ids = _seqs()
    with torch.no_grad():
        want = hf(ids).logits
        got = m.model(ids)
    assert want.std() > 0.5
    assert (got - want).abs().max().item() <= TOL
    # the cached path: prefill then one token at a time gives the same last logits
    cache = m.model.new_cache(ids.shape[0])
    with torch.no_grad():
        m.model(ids[:, :-1], cache=cache)
        step = m.model(ids[:, -1:], cache=cache)[:, -1]
    assert (step - want[:, -1]).abs().max().item() <= TOL


@pytest.mark.parametrize("variant", [dict(do_layer_norm_before=False),  # OPT-350m: post-norm, no final norm
                                     dict(word_embed_proj_dim=32),  # project_in / project_out
                                     dict(do_layer_norm_before=False, word_embed_proj_dim=48)])
def test_opt_variants_match_transformers(tmp_path, variant):
    hf = _opt(seed=3, **variant)
    model, _ = load_opt(hf.config.to_dict(), hf.state_dict(), "test")
    assert model.cfg.post_norm == (not hf.config.do_layer_norm_before)
    ids = _seqs(seed=4)
    with torch.no_grad():
        want, got = hf(ids).logits, model(ids)
    assert want.std() > 0.5
    assert (got - want).abs().max().item() <= TOL
    assert model.num_params() == model.cfg.num_params()


def test_greedy_sequences_match_transformers(meshxl_dir):
    folder, hf = meshxl_dir
    m = MeshXL.from_pretrained(folder)
    n = 60
    with torch.no_grad():
        want = hf.generate(torch.full((2, 1), tok.BOS), do_sample=False, max_new_tokens=n, min_new_tokens=n,
                           eos_token_id=tok.EOS, pad_token_id=tok.PAD)[:, 1:].tolist()
    got = generate(m.model, [[tok.BOS]] * 2, n, SamplingConfig(temperature=0.0), eos_id=None,
                   rules=token_rules(allowed=_no_eos))
    assert got == want


def _no_eos(step, outputs):
    ok = torch.ones(len(outputs), tok.VOCAB, dtype=torch.bool)
    ok[:, tok.EOS] = False  # as transformers' min_new_tokens does
    return ok


def test_constrained_sampling_always_gives_valid_meshes(meshxl_dir):
    folder, _ = meshxl_dir
    m = MeshXL.from_pretrained(folder)
    free = m.sample(12, max_faces=12, constrained=False)
    held = m.sample(12, max_faces=12, constrained=True)
    for s in held:
        assert s.parsed and follows_grammar(s.tokens, 12) and tok.is_canonical([tok.BOS] + s.tokens)
        assert tok.tokenize(s.mesh, normalize_first=False) == [tok.BOS] + s.tokens  # exact round trip
    on = mesh_metrics([s.raw for s in held], [s.parsed for s in held])
    off = mesh_metrics([s.raw for s in free], [s.parsed for s in free])
    print(f"\ntiny random MeshXL, 12 samples, max 12 faces: constrained {on}; unconstrained {off}")
    assert on["parse"] == 1.0 and on["clean"] == 1.0 and on["faces"] >= 1
    assert off["parse"] < 1.0  # the random model alone does not follow the serialisation
    loose = m.sample(6, max_faces=12, ordered=False)  # valid meshes in any face order
    assert summarize(loose)["parse"] == 1.0 and summarize(loose)["clean"] == 1.0
    # same seeds, same meshes; batched or one at a time
    again = m.sample(3, seeds=[5, 1, 7], max_faces=12, batch_size=1)
    batched = m.sample(3, seeds=[5, 1, 7], max_faces=12, batch_size=3)
    assert [s.tokens for s in again] == [s.tokens for s in batched]


def test_matches_reads_the_config():
    assert matches({"model_type": "opt", "_name_or_path": "mesh-xl/mesh-xl-350m", "vocab_size": 50272})
    assert matches({"model_type": "opt", "vocab_size": tok.VOCAB})
    assert not matches({"model_type": "opt", "_name_or_path": "facebook/opt-125m", "vocab_size": 50272})
    assert not matches({"model_type": "llama", "vocab_size": tok.VOCAB})


def test_category_fine_tunes_load_and_switch(tmp_path, meshxl_dir):
    folder, hf = meshxl_dir
    work = _folder(tmp_path / "mesh-xl-125m", hf)
    tuned = _opt(seed=9)
    # a MeshXL training checkpoint: the wrapper's prefix, the optimizer, argparse's Namespace
    state = {f"transformer.{k}": v for k, v in tuned.state_dict().items()}
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 3,
                "args": argparse.Namespace(dataset="sft.shapenet_chair", n_discrete_size=128)},
               work / "meshxl-125m-chair.pth")
    m = MeshXL.from_pretrained(work)
    assert m.categories == ["chair"]
    base = m.sample(2, max_faces=6, seeds=[0, 1])
    chair = m.sample(2, max_faces=6, seeds=[0, 1], category="chair")
    ids = _seqs(1, 20)
    with torch.no_grad():
        assert (m.model(ids) - tuned(ids).logits).abs().max().item() <= TOL  # the fine-tune is in place
    assert [s.tokens for s in base] != [s.tokens for s in chair]
    assert [s.tokens for s in m.sample(2, max_faces=6, seeds=[0, 1])] == [s.tokens for s in base]  # back to base
    alone = MeshXL.from_pretrained(work / "meshxl-125m-chair.pth")
    assert alone.categories == ["chair"]
    with pytest.raises(UsageError, match="only category fine-tunes"):
        alone.generate(1)


def test_bad_requests_are_one_line_errors(meshxl_dir, tmp_path):
    folder, _ = meshxl_dir
    m = MeshXL.from_pretrained(folder)
    for kwargs, msg in [(dict(prompt="a chair"), "takes no text prompt"),
                        (dict(category="sofa"), "unknown category 'sofa'"),
                        (dict(max_faces=m.max_faces_limit + 1), "--max-faces must be in 1..28"),
                        (dict(max_faces=0), "--max-faces")]:
        with pytest.raises(UsageError, match=msg) as e:
            m.generate(1, **kwargs)
        assert "\n" not in str(e.value)
    # an OPT language model is not MeshXL: its vocabulary says so, whatever config.json claims
    lm = _opt(seed=5, vocab_size=300)
    with pytest.raises(ArgenError, match="not a MeshXL checkpoint"):
        MeshXL.from_pretrained(_folder(tmp_path / "opt", lm))
    bad = tmp_path / "evil"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps(_released_config(lm)))
    torch.save({"model": {"x": torch.zeros(1)}, "f": np.float64}, bad / "pytorch_model.bin")
    with pytest.raises(ArgenError, match="refused to load"):
        read_checkpoint(bad / "pytorch_model.bin")
