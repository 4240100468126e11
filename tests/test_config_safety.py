"""A model folder with a broken config.json or tokenizer.json is a one-line error naming the
problem, before anything is built: wrong types, unknown choices, absurd sizes."""

from __future__ import annotations

import json
import shutil
import time

import pytest


def broken(tmp_path, char_model_dir, change) -> str:
    folder = tmp_path / "m"
    shutil.copytree(char_model_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    change(cfg["transformer"], folder)
    (folder / "config.json").write_text(json.dumps(cfg))
    return str(folder)


@pytest.mark.parametrize("field, value, message", [
    ("n_layer", 2.5, "n_layer: 2.5 is not an integer"),
    ("n_layer", "x", "n_layer: 'x' is not an integer"),
    ("pos_emb", "bogus", "pos_emb: 'bogus' is not one of 'rope', 'learned'"),
    ("qkv_bias", 1, "qkv_bias: 1 is not true or false"),
    ("rope_theta", None, "rope_theta: None is not a finite number"),
])
def test_a_config_value_of_the_wrong_kind_is_named(cli, tmp_path, char_model_dir, field, value, message):
    model = broken(tmp_path, char_model_dir, lambda t, _: t.__setitem__(field, value))
    code, _, err = cli("text", "--model", model, "-p", "To be", "--max-new-tokens", "2", "-o", tmp_path / "o.txt")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 2 and "invalid transformer config" in lines[0] and message in lines[0], err
    assert not (tmp_path / "o.txt").exists()


def test_an_absurd_size_is_refused_before_the_model_is_built(cli, tmp_path, char_model_dir):
    model = broken(tmp_path, char_model_dir, lambda t, _: t.update(n_layer=1_000_000, d_model=10**9))
    t0 = time.time()
    code, _, err = cli("text", "--model", model, "-p", "To be", "--max-new-tokens", "2", "-o", tmp_path / "o.txt")
    assert code == 1 and "the config describes a model of at least" in err and "internal error" not in err, err
    assert time.time() - t0 < 30


@pytest.mark.parametrize("content, message", [("{}", "is not a tokenizer the tokenizers library can read"),
                                              ("[]", "is not a tokenizer (a JSON list)"),
                                              ('{"argen_tokenizer": "char"}', "'chars' must be a non-empty string")])
def test_a_broken_tokenizer_is_one_line(cli, tmp_path, char_model_dir, content, message):
    model = broken(tmp_path, char_model_dir, lambda t, folder: (folder / "tokenizer.json").write_text(content))
    code, _, err = cli("text", "--model", model, "-p", "To be", "--max-new-tokens", "2", "-o", tmp_path / "o.txt")
    assert code == 1 and message in err and len(err.strip().splitlines()) == 2, err


def test_a_model_larger_than_the_free_memory_is_refused_before_it_is_built(cli, tmp_path, char_model_dir, monkeypatch):
    import argen.checkpoints.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda: 100_000)  # the tiny model's weights alone need more
    code, _, err = cli("text", "--model", char_model_dir, "-p", "To be", "--max-new-tokens", "2", "-o", tmp_path / "o.txt")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 2 and "of memory, this machine has 97.7 KiB free" in lines[0], err
    assert not (tmp_path / "o.txt").exists()


def test_a_consistent_but_huge_model_is_refused_before_it_is_built(tmp_path, monkeypatch):
    """Weights that match their config (so the config-vs-weights check passes) but would not fit:
    the parameter count x 4 bytes is checked against the free memory before the model is built."""
    import torch

    import argen.checkpoints.memory as memory
    from argen.checkpoints.argen_format import build_model
    from argen.engine.config import TransformerConfig
    from argen.errors import ArgenError
    from tests.conftest import tiny_model

    model = tiny_model()
    monkeypatch.setattr(memory, "available_memory", lambda: 4 * model.cfg.num_params())  # less the margin: too little
    with pytest.raises(ArgenError, match="needs about .* of memory"):
        build_model(TransformerConfig.from_dict(model.cfg.to_dict()), dict(model.state_dict()), "tiny")
    monkeypatch.setattr(memory, "available_memory", lambda: 8 * model.cfg.num_params())
    rebuilt = build_model(TransformerConfig.from_dict(model.cfg.to_dict()), dict(model.state_dict()), "tiny")
    assert torch.equal(rebuilt.embed.weight, model.embed.weight)


def test_the_free_memory_is_read_from_the_system():
    from argen.checkpoints.memory import available_memory

    free = available_memory()
    assert free is not None and 1 << 20 < free < 1 << 50
