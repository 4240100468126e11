"""Hugging Face checkpoint folders load into argen's backbone and give the same logits.

Each test builds a tiny random model with transformers, saves it as transformers would, loads it
with argen and compares numbers. Parameters are re-drawn after construction because transformers
initialises biases to zero and norm weights to one, which would hide a mis-mapped bias or norm.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from argen.checkpoints.hf_convert import hf_config_to_argen, is_hf_folder, load_hf_folder  # noqa: E402
from argen.errors import ArgenError  # noqa: E402

TOL = 1e-4
VOCAB = 100


def _randomize(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            is_norm = "norm" in name or ".ln_" in name or name.split(".")[-2].startswith("ln_")
            if is_norm and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.1 * noise)


def _llama(tmp_path: Path, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    base = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                rope_theta=5000.0, bos_token_id=1, eos_token_id=2)
    cfg = transformers.LlamaConfig(**{**base, **kw})
    return _save(transformers.LlamaForCausalLM(cfg), tmp_path)


def _qwen2(tmp_path: Path, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                   rope_theta=20000.0, **kw)
    return _save(transformers.Qwen2ForCausalLM(cfg), tmp_path)


def _gpt2(tmp_path: Path, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=64,
                                  bos_token_id=98, eos_token_id=99, **kw)
    return _save(transformers.GPT2LMHeadModel(cfg), tmp_path)


def _save(model: torch.nn.Module, folder: Path, **kw) -> torch.nn.Module:
    _randomize(model, seed=1)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True, **kw)
    return model


def _max_logit_diff(hf_model: torch.nn.Module, folder: Path, seq_len: int = 24) -> float:
    model, _ = load_hf_folder(folder)
    assert not model.training
    torch.manual_seed(2)
    idx = torch.randint(0, VOCAB, (3, seq_len))  # (B, T), no padding
    with torch.no_grad():
        want = hf_model(idx).logits.float()  # (B, T, V)
        got = model(idx)
    assert got.shape == want.shape
    # the comparison is only meaningful if the logits are not all near zero
    assert want.std() > 0.1
    return (got - want).abs().max().item()


def _edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    path.write_text(json.dumps(cfg))


# ------------------------------------------------------------------------------- logits per family

def test_llama_gqa_biases_explicit_head_dim(tmp_path):
    # head_dim 24 != 64 / 4, biases on all four projections and the MLP
    hf = _llama(tmp_path, head_dim=24, attention_bias=True, mlp_bias=True)
    model, info = load_hf_folder(tmp_path)
    c = model.cfg
    assert (c.n_head, c.n_kv_head, c.head_dim, c.d_ff) == (4, 2, 24, 96)
    assert c.qkv_bias and c.out_bias and c.mlp_bias and not c.tie_embeddings
    assert c.rope_theta == 5000.0 and c.rope_scaling is None
    assert c.extra["hf_model_type"] == "llama"
    assert _max_logit_diff(hf, tmp_path) <= TOL
    assert info["model_type"] == "llama" and info["name"] == tmp_path.name


LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 32}


def test_llama_tied_llama3_rope(tmp_path):
    # head_dim 16: with original length 32 the wavelengths (6.3 .. 19869) fall in all three bands
    hf = _llama(tmp_path, tie_word_embeddings=True, rope_scaling=dict(LLAMA3))
    model, _ = load_hf_folder(tmp_path)
    assert model.cfg.tie_embeddings and model.lm_head.weight is model.embed.weight
    assert model.cfg.rope_scaling["rope_type"] == "llama3"
    assert _max_logit_diff(hf, tmp_path, seq_len=48) <= TOL


def test_llama3_rope_without_original_length_falls_back_to_max_positions(tmp_path):
    hf = _llama(tmp_path, rope_scaling={k: v for k, v in LLAMA3.items() if k != "original_max_position_embeddings"})
    params = json.loads((tmp_path / "config.json").read_text())["rope_parameters"]
    params.pop("original_max_position_embeddings", None)
    _edit_config(tmp_path, rope_parameters=params)
    model, _ = load_hf_folder(tmp_path)
    assert model.cfg.rope_scaling["original_max_position_embeddings"] == 128
    assert _max_logit_diff(hf, tmp_path) <= TOL


@pytest.mark.parametrize("scaling", [LLAMA3, {"type": "linear", "factor": 4.0}, None])
def test_old_top_level_rope_form(tmp_path, scaling):
    hf = _llama(tmp_path, rope_scaling=dict(scaling) if scaling else None)
    # transformers 5 writes rope_parameters; older configs have rope_theta + rope_scaling at top level
    _edit_config(tmp_path, rope_parameters=None, rope_theta=5000.0, rope_scaling=scaling)
    assert "rope_parameters" not in json.loads((tmp_path / "config.json").read_text())
    model, _ = load_hf_folder(tmp_path)
    assert model.cfg.rope_theta == 5000.0
    kind = None if scaling is None else scaling.get("rope_type", scaling.get("type"))
    assert (model.cfg.rope_scaling or {}).get("rope_type") == kind
    assert _max_logit_diff(hf, tmp_path, seq_len=40) <= TOL


def test_qwen2(tmp_path):
    hf = _qwen2(tmp_path)
    model, info = load_hf_folder(tmp_path)
    assert model.cfg.qkv_bias and not model.cfg.out_bias
    assert model.cfg.rope_theta == 20000.0
    assert info["eos_token_id"] is None
    assert _max_logit_diff(hf, tmp_path) <= TOL


def test_qwen2_tied(tmp_path):
    hf = _qwen2(tmp_path, tie_word_embeddings=True)
    assert _max_logit_diff(hf, tmp_path) <= TOL


@pytest.mark.parametrize("act", ["gelu_new", "gelu"])
def test_gpt2(tmp_path, act):
    hf = _gpt2(tmp_path, activation_function=act)
    model, info = load_hf_folder(tmp_path)
    assert model.cfg.mlp == {"gelu_new": "gelu_tanh", "gelu": "gelu"}[act]
    assert model.cfg.pos_emb == "learned" and model.cfg.tie_embeddings
    assert (info["eos_token_id"], info["bos_token_id"]) == (99, 98)
    assert _max_logit_diff(hf, tmp_path) <= TOL


def test_gpt2_old_checkpoint_without_prefix_with_mask_buffers(tmp_path):
    from safetensors.torch import save_file

    hf = _gpt2(tmp_path)
    # the original openai-community/gpt2 upload: no "transformer." prefix, causal-mask buffers saved
    state = {k.removeprefix("transformer."): v.contiguous() for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    for i in range(2):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(state, str(tmp_path / "model.safetensors"))
    assert _max_logit_diff(hf, tmp_path) <= TOL


def test_sharded_safetensors(tmp_path):
    hf = _llama(tmp_path / "m", tie_word_embeddings=False)
    shutil.rmtree(tmp_path / "m")
    hf.save_pretrained(tmp_path / "m", safe_serialization=True, max_shard_size="40KB")
    assert (tmp_path / "m" / "model.safetensors.index.json").is_file()
    assert len(list((tmp_path / "m").glob("model-*.safetensors"))) > 1
    assert _max_logit_diff(hf, tmp_path / "m") <= TOL


def test_bf16_weights_are_upcast(tmp_path):
    hf = _llama(tmp_path)
    hf.to(torch.bfloat16).save_pretrained(tmp_path, safe_serialization=True)
    model, _ = load_hf_folder(tmp_path)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    # reference: transformers' own float32 load of the bf16 folder (hf.float() would keep the
    # rotary inverse frequencies rounded to bf16 by .to(), a different model)
    ref = transformers.LlamaForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert ref.model.embed_tokens.weight.dtype == torch.float32
    assert _max_logit_diff(ref, tmp_path) <= TOL


# ------------------------------------------------------------------------------- metadata

def test_info_ids_and_tokenizer(tmp_path):
    _llama(tmp_path)
    (tmp_path / "generation_config.json").unlink(missing_ok=True)
    _edit_config(tmp_path, eos_token_id=[5, 6], bos_token_id=3)
    _, info = load_hf_folder(tmp_path)
    assert (info["eos_token_id"], info["bos_token_id"], info["tokenizer"]) == (5, 3, None)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [7, 8]}))
    (tmp_path / "tokenizer.json").write_text("{}")
    _, info = load_hf_folder(tmp_path)
    assert (info["eos_token_id"], info["bos_token_id"]) == (7, 3)  # generation_config wins, config fills in
    assert info["tokenizer"] == str(tmp_path / "tokenizer.json")


def test_is_hf_folder(tmp_path):
    assert not is_hf_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "argen", "transformer": {}}))
    assert not is_hf_folder(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    assert not is_hf_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert is_hf_folder(tmp_path)


# ------------------------------------------------------------------------------- greedy generation

def test_greedy_generation_matches_transformers(tmp_path):
    if importlib.util.find_spec("argen.engine.sampling.next_token") is None:
        pytest.skip("argen.engine.sampling.next_token not written yet")
    from argen.engine.sampling.next_token import generate
    from argen.engine.sampling.processors import SamplingConfig

    hf = _llama(tmp_path / "llama", rope_scaling=dict(LLAMA3))
    hf2 = _gpt2(tmp_path / "gpt2")
    for hf_model, folder in ((hf, tmp_path / "llama"), (hf2, tmp_path / "gpt2")):
        model, _ = load_hf_folder(folder)
        hf_model.generation_config.eos_token_id = None  # never stop early: compare all new tokens
        hf_model.generation_config.pad_token_id = 0
        torch.manual_seed(3)
        prompts = [torch.randint(0, VOCAB, (n,)).tolist() for n in (5, 9, 1)]  # unequal: argen pads
        new = 12
        got = generate(model, prompts, max_new_tokens=new, sampling=SamplingConfig(temperature=0.0))
        for prompt, tokens in zip(prompts, got):
            ids = torch.tensor([prompt])
            with torch.no_grad():
                out = hf_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, do_sample=False)
            assert len(tokens) == new and tokens == out[0, len(prompt):].tolist(), folder.name


# ------------------------------------------------------------------------------- errors

def test_folder_without_config(tmp_path):
    with pytest.raises(ArgenError, match="config.json") as e:
        load_hf_folder(tmp_path)
    assert e.value.hint


def test_unsupported_model_type(tmp_path):
    _llama(tmp_path)
    _edit_config(tmp_path, model_type="bert")
    with pytest.raises(ArgenError, match="bert") as e:
        load_hf_folder(tmp_path)
    assert "llama" in e.value.hint


def test_missing_required_key(tmp_path):
    _llama(tmp_path)
    _edit_config(tmp_path, hidden_size=None)
    with pytest.raises(ArgenError, match="hidden_size") as e:
        load_hf_folder(tmp_path)
    assert e.value.hint


@pytest.mark.parametrize("change, match", [
    ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}}, "yarn"),
    ({"rope_parameters": None, "rope_scaling": {"type": "dynamic", "factor": 2.0}}, "dynamic"),
    ({"hidden_act": "gelu"}, "hidden_act"),
])
def test_unsupported_llama_settings(tmp_path, change, match):
    _llama(tmp_path)
    _edit_config(tmp_path, **change)
    with pytest.raises(ArgenError, match=match):
        load_hf_folder(tmp_path)


@pytest.mark.parametrize("flag, value", [("scale_attn_by_inverse_layer_idx", True), ("reorder_and_upcast_attn", True),
                                         ("scale_attn_weights", False), ("add_cross_attention", True)])
def test_gpt2_unsupported_flags(flag, value):
    hf = {"model_type": "gpt2", "vocab_size": 10, "n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 16}
    assert hf_config_to_argen(hf).mlp == "gelu_tanh"
    with pytest.raises(ArgenError, match=flag):
        hf_config_to_argen({**hf, flag: value})


def test_unknown_weight_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    _llama(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["model.layers.0.self_attn.q_norm.weight"] = torch.ones(16)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ArgenError, match="q_norm"):
        load_hf_folder(tmp_path)


def test_missing_weight_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    _llama(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ArgenError, match="up_proj"):
        load_hf_folder(tmp_path)


def test_corrupt_safetensors(tmp_path):
    _llama(tmp_path)
    path = tmp_path / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArgenError, match="model.safetensors") as e:
        load_hf_folder(tmp_path)
    assert e.value.hint


def test_no_weights(tmp_path):
    _llama(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ArgenError, match="no weights"):
        load_hf_folder(tmp_path)


def _touch(path: str) -> None:  # what a hostile pickle would run on load
    Path(path).write_text("pwned")


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


def test_pickled_code_in_bin_is_refused(tmp_path):
    hf = _llama(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    marker = tmp_path / "marker.txt"
    state = dict(hf.state_dict())
    state["extra"] = Payload(marker)
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(ArgenError, match="refused") as e:
        load_hf_folder(tmp_path)
    assert "safetensors" in e.value.hint
    assert not marker.exists()  # the pickled call never ran


def test_plain_bin_state_dict_loads(tmp_path):
    hf = _gpt2(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    assert _max_logit_diff(hf, tmp_path) <= TOL


def test_safetensors_preferred_over_bin(tmp_path):
    hf = _llama(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    assert _max_logit_diff(hf, tmp_path) <= TOL


def test_corrupt_bin(tmp_path):
    _llama(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ArgenError, match="pytorch_model.bin"):
        load_hf_folder(tmp_path)
