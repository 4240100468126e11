"""The trainer and the evaluator, on a small corpus; recipe validation."""

import json

import pytest

from argen.errors import ArgenError
from argen.lab.recipes import load_train_recipe

CORPUS = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 60)


def write_recipe(tmp_path, corpus_path, **train):
    t = {"seq_len": 32, "batch_size": 8, "max_steps": 40, "lr": 3e-3, "warmup_steps": 5, "eval_every": 20,
         "eval_batches": 2, "dtype": "float32", **train}
    lines = ["task: text", "name: tiny-test", "data:", f"  path: {corpus_path}", "model:", "  n_layer: 1",
             "  n_head: 2", "  d_model: 32", "train:"] + [f"  {k}: {v}" for k, v in t.items()]
    p = tmp_path / "recipe.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_train_then_eval_then_generate(cli, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    recipe = write_recipe(tmp_path, corpus)
    out = tmp_path / "model"
    code, stdout, err = cli("train", "text", "--recipe", recipe, "-o", out)
    assert code == 0, err
    log = json.loads((out / "train_log.json").read_text())
    losses = [h["val_loss"] for h in log["history"]]
    assert losses[-1] < losses[0] - 1.0  # a repetitive corpus is learned quickly
    card = (out / "README.md").read_text()
    assert f"{log['summary']['val_loss']:.4f}" in card
    code, stdout, err = cli("eval", "text", "--model", out, "--data", corpus, "--json")
    assert code == 0, err
    assert abs(json.loads(stdout)["val_loss"] - log["summary"]["val_loss"]) < 1e-3
    code, stdout, err = cli("text", "--model", out, "--prompt", "All:", "--max-new-tokens", "20", "--temperature", "0")
    assert code == 0 and stdout.strip()


def test_a_time_stop_evaluates_and_keeps_the_last_step(cli, tmp_path, monkeypatch):
    import argen.lab.train

    clock = iter(range(0, 10**6, 3))  # every reading of the clock is 3 s later
    monkeypatch.setattr(argen.lab.train.time, "time", lambda: next(clock))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    recipe = write_recipe(tmp_path, corpus, max_steps=400, max_minutes=0.5, eval_every=100)
    code, _, err = cli("train", "text", "--recipe", recipe, "-o", tmp_path / "model")
    assert code == 0, err
    log = json.loads((tmp_path / "model" / "train_log.json").read_text())
    steps = log["summary"]["steps"]
    assert 0 < steps < 400 and steps % 100  # stopped by the clock, between two scheduled evaluations
    assert log["history"][-1]["step"] == steps  # ... and that last step was evaluated
    assert log["summary"]["best_step"] == steps  # on a corpus this easy the last step is the best


def test_init_continues_from_a_trained_model_and_refuses_one_that_does_not_fit(cli, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    first = tmp_path / "first"
    assert cli("train", "text", "--recipe", write_recipe(tmp_path, corpus), "-o", first)[0] == 0
    before = json.loads((first / "train_log.json").read_text())
    code, _, err = cli("train", "text", "--recipe", write_recipe(tmp_path, corpus, max_steps=20, init=first),
                       "-o", tmp_path / "second")
    assert code == 0, err
    after = json.loads((tmp_path / "second" / "train_log.json").read_text())
    # the same validation batches, so step 0 of the continued run scores the first run's best weights
    assert after["history"][0]["val_loss"] == pytest.approx(before["summary"]["best_val_loss"], abs=1e-4)
    assert after["history"][0]["val_loss"] < before["history"][0]["val_loss"] - 1.0
    assert after["summary"]["init"] == str(first) and f"from {first}" in (tmp_path / "second" / "README.md").read_text()
    wider = write_recipe(tmp_path, corpus, max_steps=20, init=first).read_text().replace("d_model: 32", "d_model: 48")
    (tmp_path / "wider.yaml").write_text(wider)
    code, _, err = cli("train", "text", "--recipe", tmp_path / "wider.yaml", "-o", tmp_path / "third")
    assert code == 1 and err.startswith("Error: train.init") and "shape" in err and not (tmp_path / "third").exists()


def test_task_must_match_recipe(cli, tmp_path):
    recipe = write_recipe(tmp_path, tmp_path / "c.txt")
    code, _, err = cli("train", "image", "--recipe", recipe)
    assert code == 2 and "is a text recipe" in err


@pytest.mark.parametrize("edit, where", [
    (("  lr: 0.003", "  lr: -1"), ":13: train.lr"),
    (("  n_layer: 1", "  n_layer: 1\n  bogus: 3"), ":6: model: Value error, unknown model key(s) bogus"),
    (("  n_layer: 1", "  n_layer: 1\n  token_shift: true"), ":6: model: Value error, unknown model key(s) token_shift"),
    (("task: text", "task: text\nextra_key: 1"), ":2: extra_key"),
    (("  batch_size: 8", "  batch_size: eight"), ":11: train.batch_size"),
])
def test_invalid_recipes_name_file_line_and_key(tmp_path, edit, where):
    recipe = write_recipe(tmp_path, tmp_path / "c.txt")
    recipe.write_text(recipe.read_text().replace(*edit))
    with pytest.raises(ArgenError) as e:
        load_train_recipe(recipe)
    assert str(recipe) + where in e.value.message


def test_broken_yaml_is_one_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("task: text\n  name: [oops\n")
    with pytest.raises(ArgenError, match="invalid YAML"):
        load_train_recipe(p)


def test_weight_average_follows_its_formula():
    import torch

    from argen.lab.train import WeightAverage

    model = torch.nn.Linear(2, 1)
    start = model.weight.detach().clone()
    avg = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    avg.update(model)  # decay min(0.5, 2 / 11): the first update moves most of the way
    expect = start + (1 - 2 / 11) * (1.0 - start)
    assert torch.allclose(avg.state(model)["weight"], expect)
    for _ in range(30):
        avg.update(model)
    assert torch.allclose(avg.state(model)["weight"], torch.ones(1, 2), atol=1e-6)


def test_ema_weights_are_scored_kept_and_saved(cli, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    out = tmp_path / "model"
    code, _, err = cli("train", "text", "--recipe", write_recipe(tmp_path, corpus, ema=0.9), "-o", out)
    assert code == 0, err
    log = json.loads((out / "train_log.json").read_text())
    best = next(h for h in log["history"] if h["step"] == log["summary"]["best_step"])
    assert best["val_loss"] == log["summary"]["best_val_loss"]
    assert abs(best["raw_val_loss"] - best["val_loss"]) > 1e-3  # the average is not the raw weights
    code, stdout, err = cli("eval", "text", "--model", out, "--data", corpus, "--json")
    assert code == 0, err
    assert abs(json.loads(stdout)["val_loss"] - log["summary"]["val_loss"]) < 1e-3  # what was saved is what scored
    assert log["summary"]["ema"] == 0.9 and "moving average of the weights (decay 0.9)" in (out / "README.md").read_text()


@pytest.mark.parametrize("keep", ["best", "last"])
def test_keep_last_saves_the_final_weights_even_when_an_earlier_step_scored_better(cli, tmp_path, keep):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    out = tmp_path / "model"
    # a learning rate this high makes the model diverge: step 0 scores best
    recipe = write_recipe(tmp_path, corpus, lr=10.0, warmup_steps=0, min_lr=10.0, keep=keep)
    code, _, err = cli("train", "text", "--recipe", recipe, "-o", out)
    assert code == 0, err
    log = json.loads((out / "train_log.json").read_text())
    losses = {h["step"]: h["val_loss"] for h in log["history"]}
    assert min(losses.values()) < losses[40] - 0.1  # an earlier checkpoint was the better one
    want = 40 if keep == "last" else min(losses, key=losses.get)
    assert log["summary"]["best_step"] == want and log["summary"]["best_val_loss"] == losses[want]
    code, stdout, err = cli("eval", "text", "--model", out, "--data", corpus, "--json")
    assert code == 0, err
    # what was saved is what scored (the evaluation reads more batches than the trainer's 2: within 5%)
    assert json.loads(stdout)["val_loss"] == pytest.approx(losses[want], rel=0.05)
    assert f"{keep} checkpoint at step {want}" in (out / "README.md").read_text()
