"""`argen text` and `argen.load` on block-diffusion folders: a tiny random Qwen2ForCausalLM saved by
transformers in Fast-dLLM v2's layout (config.json relabelled, a tokenizer.json beside it) is picked
by its config, decoded block by block, and gives the engine's tokens; bad requests are one line."""

import json

import pytest
import torch

import argen
from argen.engine.sampling.processors import SamplingConfig
from argen.modalities.text.block_diffusion.api import generate_blocks, load_block_diffusion

BD, VOCAB, MASK = 4, 96, 95
CHARS = "".join(chr(c) for c in range(32, 32 + 90))  # ids 0..89; 90..95 unused, 95 the mask


def char_tokenizer(path) -> None:
    """A tokenizer.json with one id per printable character (a BPE without merges)."""
    from tokenizers import Tokenizer, decoders, models

    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(CHARS)}, merges=[]))
    tok.decoder = decoders.Fuse()
    tok.save(str(path))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=False)
    hf = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():  # a peaked head, so that some tokens pass a threshold
        hf.lm_head.weight.mul_(30.0)
    out = tmp_path_factory.mktemp("fdllm") / "fast-dllm-tiny"
    hf.save_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    config.update(model_type="Fast_dLLM_Qwen", architectures=["Fast_dLLM_QwenForCausalLM"], bd_size=BD,
                  mask_token_id=MASK)
    (out / "config.json").write_text(json.dumps(config))
    char_tokenizer(out / "tokenizer.json")
    return out


def engine_text(folder, prompt: str, seed: int, n: int, **kw) -> tuple[str, int]:
    """What the engine makes of a prompt, decoded (uncached: recomputing every block)."""
    model = load_block_diffusion(folder)
    toks, passes = generate_blocks(model, [model.tokenizer.encode(prompt)], [seed], n, use_cache=False, **kw)
    return model.tokenizer.decode(toks[0]), passes[0]


def test_cli_picks_block_diffusion_from_the_config(cli, folder):
    code, out, err = cli("text", "--model", folder, "-p", "Hello", "--max-new-tokens", "14", "--seed", "3",
                         "--threshold", "0.7", "--json")
    assert code == 0, err
    rec = json.loads(out.strip().splitlines()[-1])
    want, passes = engine_text(folder, "Hello", 3, 14, threshold=0.7, sampling=SamplingConfig(temperature=0.0))
    assert rec["text"] == want and rec["new_tokens"] == 14
    assert rec["forward_passes"] == passes and 0 < passes <= 14
    assert rec["passes_per_token"] == round(passes / 14, 4)
    assert "forward passes per token" in err


def test_streamed_text_is_the_written_text_and_metadata_names_the_settings(cli, folder, tmp_path):
    code, streamed, err = cli("text", "--model", folder, "-p", "ab", "--max-new-tokens", "10", "--seed", "0",
                              "--temperature", "0.9", "--steps", "2")
    assert code == 0, err
    code, _, err = cli("text", "--model", folder, "-p", "ab", "--max-new-tokens", "10", "--seed", "0",
                       "--temperature", "0.9", "--steps", "2", "-o", tmp_path / "out.txt")
    assert code == 0, err
    text = (tmp_path / "out.txt").read_text()
    assert streamed.rstrip("\n") == text
    meta = json.loads((tmp_path / "out.txt.meta.json").read_text())
    assert meta["sampler"] == "block-diffusion" and meta["family"] == "fast-dllm-v2"
    assert meta["block_size"] == BD and meta["steps"] == 2 and meta.get("sub_block") is None
    # at most 2 passes for each block: the prompt opens the first of 3 blocks (2 + 10 tokens)
    assert meta["forward_passes"] <= 2 * 3
    want, _ = engine_text(folder, "ab", 0, 10, steps=2, sampling=SamplingConfig(temperature=0.9))
    assert text == want


def test_python_api_rows_match_the_cli_rows(cli, folder):
    pipe = argen.load(str(folder), device="cpu")
    outs = pipe(["Hi", "Yo"], n=2, seed=5, max_new_tokens=9, temperature=1.0)
    assert [o.seed for o in outs] == [5, 6, 7, 8]
    for o in outs:
        want, passes = engine_text(folder, o.prompt, o.seed, 9, sampling=SamplingConfig(temperature=1.0))
        assert o.text == want and o.forward_passes == passes
    code, out, err = cli("text", "--model", folder, "-p", "Hi", "-p", "Yo", "-n", "2", "--seed", "5",
                         "--max-new-tokens", "9", "--temperature", "1", "--json", "--batch-size", "3")
    assert code == 0, err
    assert [json.loads(line)["text"] for line in out.strip().splitlines()] == [o.text for o in outs]


@pytest.mark.parametrize("args, message", [
    (["--block-size", "8"], "trained with blocks of 4 tokens, not 8"),
    (["--threshold", "1.5"], "--threshold"),
    (["--threshold", "0"], "--threshold"),
    (["--sampler", "next-token"], "is a block-diffusion model; it has no next-token sampler"),
    (["--draft", "shakespeare-char"], "speculative decoding"),
])
def test_bad_block_requests_are_one_line(cli, folder, tmp_path, args, message):
    code, out, err = cli("text", "--model", folder, "-p", "ab", "--max-new-tokens", "4", *args,
                         "-o", tmp_path / "x.txt")
    assert code != 0 and message in err
    assert len([line for line in err.strip().splitlines() if line.startswith("Error")]) == 1
    assert not (tmp_path / "x.txt").exists()


@pytest.mark.parametrize("args, message", [
    (["--sampler", "block-diffusion"], "is an autoregressive model; block diffusion needs a model trained for it"),
    (["--block-size", "4"], "block-diffusion settings"),
])
def test_block_flags_on_an_autoregressive_model_are_one_line(cli, args, message):
    code, out, err = cli("text", "--model", "shakespeare-char", "-p", "ROMEO:", "--max-new-tokens", "4", *args)
    assert code != 0 and message in err and out == ""


def test_a_recipe_sweeps_thresholds_and_gives_the_cli_text(cli, folder, tmp_path):
    recipe = tmp_path / "bd.yaml"
    recipe.write_text(f"""defaults:
  model: {folder}
  max_new_tokens: 8
jobs:
  - name: sweep
    modality: text
    prompts: ["Hey"]
    seeds: [2]
    grid:
      threshold: [0.9, 0.5]
    output: "{{job}}/t{{threshold}}-{{seed}}.txt"
""")
    code, _, err = cli("run", recipe, "-o", tmp_path / "out")
    assert code == 0, err
    for th in (0.9, 0.5):
        meta = json.loads((tmp_path / "out" / "sweep" / f"t{th}-2.txt.meta.json").read_text())
        assert meta["threshold"] == th and meta["sampler"] == "block-diffusion"
        want, passes = engine_text(folder, "Hey", 2, 8, threshold=th, sampling=SamplingConfig(temperature=0.0))
        assert (tmp_path / "out" / "sweep" / f"t{th}-2.txt").read_text() == want and meta["forward_passes"] == passes


def test_a_prompt_that_fills_the_context_is_one_line(cli, folder, tmp_path):
    """A prompt must leave room for a new token: 64 characters in a 64-position model are refused."""
    code, _, err = cli("text", "--model", folder, "-p", "a" * 64, "--max-new-tokens", "4", "-o", tmp_path / "x.txt")
    assert code == 2 and "the prompt is 64 tokens, longer than the 63 tokens the model's context (64) leaves" in err
    assert len(err.strip().splitlines()) == 2 and not (tmp_path / "x.txt").exists()
