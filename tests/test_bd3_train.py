"""`argen train text-block-diffusion`: BD3-LM's objective learns a small corpus, the folder loads as a
block-diffusion model, and the evaluation scores it against a next-token model of the same corpus."""

import json

import torch
from conftest import tiny_model

from argen.engine.sampling.processors import SamplingConfig
from argen.lab.eval.text_block_diffusion import evaluate_block_diffusion
from argen.modalities.text.bd3lm.objective import bd3_loss, block_diff_mask, nelbo
from argen.modalities.text.block_diffusion.api import generate_blocks, load_block_diffusion

CORPUS = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 60)


def write_recipe(tmp_path, corpus_path, task, name, block_size=None, steps=60):
    model = ["  n_layer: 2", "  n_head: 2", "  d_model: 48"] + ([f"  block_size: {block_size}"] if block_size else [])
    train = {"seq_len": 32, "batch_size": 16, "max_steps": steps, "lr": 3e-3, "warmup_steps": 5, "eval_every": 30,
             "eval_batches": 2, "dtype": "float32"}
    lines = [f"task: {task}", f"name: {name}", "data:", f"  path: {corpus_path}", "model:", *model, "train:",
             *[f"  {k}: {v}" for k, v in train.items()], "sampling:", "  threshold: 0.6", "  steps: 2"]
    p = tmp_path / f"{name}.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_the_training_mask_shows_each_noisy_block_what_sampling_shows_it():
    """The noisy copy's logits under BD3-LM's mask equal a block-causal pass over the clean blocks
    before a block and the noisy block itself (what the sampler feeds the model)."""
    m = tiny_model(vocab=20, block_size=4, max_seq_len=16)
    x0 = torch.randint(19, (2, 16))
    xt = torch.where(torch.rand(2, 16) < 0.5, 19, x0)
    pos = torch.arange(16).repeat(2).expand(2, 32)
    with torch.no_grad():
        train = m(torch.cat([xt, x0], 1), pos=pos, attn_mask=block_diff_mask(16, 4)[None, None])[:, :16]
        for k in range(4):
            view = m(torch.cat([x0[:, :4 * k], xt[:, 4 * k:4 * k + 4]], 1))[:, -4:]
            assert (train[:, 4 * k:4 * k + 4] - view).abs().max() < 1e-5


def test_the_bound_is_the_cross_entropy_when_every_token_is_masked():
    """At rate 1 every token but the first is masked, and the weight 1/t is 1: the loss is the plain
    cross-entropy of predicting each token from the clean blocks before its own."""
    m = tiny_model(vocab=20, block_size=4, max_seq_len=16)
    x0 = torch.randint(19, (3, 16))
    with torch.no_grad():
        loss = bd3_loss(m, x0, 4, 19, lo=1.0, hi=1.0)
        xt = torch.full_like(x0, 19)
        xt[:, 0] = x0[:, 0]
        logits = m(torch.cat([xt, x0], 1), pos=torch.arange(16).repeat(2).expand(3, 32),
                   attn_mask=block_diff_mask(16, 4)[None, None])[:, 1:16].float()
        logits[..., 19] = float("-inf")
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), x0[:, 1:].flatten())
    assert abs(loss.item() - ce.item()) < 1e-5


def test_train_then_load_sample_and_evaluate(cli, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    out, ar = tmp_path / "bd3", tmp_path / "ar"
    code, _, err = cli("train", "text-block-diffusion", "--recipe",
                       write_recipe(tmp_path, corpus, "text-block-diffusion", "tiny-bd3", 4), "-o", out)
    assert code == 0, err
    log = json.loads((out / "train_log.json").read_text())
    bounds = [h["val_loss"] for h in log["history"]]
    assert bounds[-1] < bounds[0] - 1.0  # a repetitive corpus is learned quickly
    assert f"{log['summary']['val_loss']:.4f}" in (out / "README.md").read_text()
    model = load_block_diffusion(out)
    assert model.family == "argen-bd3" and model.block_size == 4 and model.mask_id == model.tokenizer.vocab_size
    assert model.defaults == {"steps": 2, "threshold": 0.6}
    ids = torch.tensor(model.tokenizer.encode(CORPUS[-800:]))
    windows = ids[: 24 * 32].view(24, 32)
    assert nelbo(model.net, windows, 4, model.mask_id) < bounds[0]
    tokens, passes = generate_blocks(model, [model.tokenizer.encode("All:")], [0], 24,
                                     sampling=SamplingConfig(temperature=0.0))
    assert passes[0] <= 6 * 2  # the recipe's default: at most 2 passes for each of the 6 blocks of 4
    assert len(tokens[0]) == 24 and model.mask_id not in tokens[0]
    # `argen eval text` takes the block-diffusion path: scored by shakespeare-char, whose characters differ
    code, _, err = cli("eval", "text", "--model", out, "--data", corpus, "--n", "2")
    assert code != 0 and "the scorer's vocabulary differs from the model's" in err
    code, _, err = cli("train", "text", "--recipe", write_recipe(tmp_path, corpus, "text", "tiny-ar"), "-o", ar)
    assert code == 0, err
    res = evaluate_block_diffusion(out, ar, data=corpus, n=6, new_tokens=23, temperature=0.8, batch_size=3)
    assert res["val_bound"] > 0 and res["scorer_val_loss"] > 0
    assert res["passes_per_token"] <= 6 * 2 / 23  # 6 blocks of 4 (the prompt opens the first) in at most 2 passes each
    assert res["gen_ppl"] > 1 and res["scorer_gen_ppl"] > 1
    assert abs(res["gen_ppl_ratio"] - res["gen_ppl"] / res["scorer_gen_ppl"]) < 1e-2


def test_token_shift_predicts_each_noisy_token_from_what_sampling_shows_the_position_before():
    """Under token shift token j is predicted by output j - 1: inside a noisy block, from the pass
    over the clean blocks before it and the noisy block; a block's first token, from the clean blocks
    alone (the output at their last token), as the shifted sampler reads them."""
    from argen.modalities.text.bd3lm.objective import shifted

    m = tiny_model(vocab=20, block_size=4, max_seq_len=16)
    x0 = torch.randint(19, (2, 16))
    xt = torch.where(torch.rand(2, 16) < 0.5, 19, x0)
    pos = torch.arange(16).repeat(2).expand(2, 32)
    with torch.no_grad():
        train = shifted(m(torch.cat([xt, x0], 1), pos=pos, attn_mask=block_diff_mask(16, 4)[None, None]), 16, 4)
        for k in range(1, 4):
            view = m(torch.cat([x0[:, :4 * k], xt[:, 4 * k:4 * k + 4]], 1))
            assert (train[:, 4 * k] - view[:, 4 * k - 1]).abs().max() < 1e-5  # from the clean blocks
            assert (train[:, 4 * k + 1:4 * k + 4] - view[:, 4 * k:4 * k + 3]).abs().max() < 1e-5


def test_a_shifted_model_starts_from_a_next_token_model_and_decodes_the_same_with_and_without_cache(cli, tmp_path):
    """`train.init` with `model.token_shift`: the autoregressive model's rows are kept and the mask
    token's added; the folder loads shifted, and cached block decoding equals recomputing every block."""
    from argen.checkpoints.argen_format import read_safetensors
    from argen.lab.recipes import load_train_recipe as load_recipe
    from argen.lab.tasks import make_task
    from argen.lab.train import init_state

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    ar, out = tmp_path / "ar", tmp_path / "bd3"
    code, _, err = cli("train", "text", "--recipe", write_recipe(tmp_path, corpus, "text", "tiny-ar", steps=30), "-o", ar)
    assert code == 0, err
    recipe = write_recipe(tmp_path, corpus, "text-block-diffusion", "tiny-bd3s", 4, steps=2)
    text = recipe.read_text().replace("  block_size: 4", "  block_size: 4\n  token_shift: true")
    recipe.write_text(text.replace("train:\n", f"train:\n  init: {ar}\n"))
    task = make_task(load_recipe(recipe))
    net = task.build_model(task.recipe.model)
    state, before = init_state(str(ar), net, task.adapt_init), read_safetensors(ar / "model.safetensors")
    for key in ("embed.weight", "lm_head.weight"):
        assert state[key].shape[0] == before[key].shape[0] + 1 == task.mask_id + 1
        assert torch.equal(state[key][:-1], before[key].to(state[key].dtype))
    code, _, err = cli("train", "text-block-diffusion", "--recipe", recipe, "-o", out)
    assert code == 0, err
    model = load_block_diffusion(out)
    assert model.token_shift and json.loads((out / "config.json").read_text())["block_diffusion"]["token_shift"]
    prompts = [model.tokenizer.encode("All:"), model.tokenizer.encode("Speak, speak.\n")]
    kw = dict(sampling=SamplingConfig(temperature=0.9))
    cached, p1 = generate_blocks(model, prompts, [3, 4], 13, **kw)
    again, p2 = generate_blocks(model, prompts, [3, 4], 13, use_cache=False, **kw)
    assert cached == again and p1 == p2 and all(len(t) == 13 for t in cached)
