"""`data.decoder_finetune`: a codec's second training stage moves its decoder only, and every
input keeps its codes (so a language model trained on them stays valid)."""

import json

import pytest
from safetensors.torch import load_file

CASES = {
    "audio-codec": (["data:", "  dataset: melodies", "  train_size: 8", "  val_size: 3"],
                    ["model:", "  channels: [4, 8]", "  strides: [16, 20]", "  latent_dim: 8", "  n_codebooks: 2",
                     "  codebook_size: 16"],
                    "val_clips_with_unchanged_codes", "its codes (3 of 3", "codec"),
    "image-tokenizer": (["data:", "  dataset: shapes", "  train_size: 64", "  val_size: 3"],
                        ["model:", "  width: 8", "  latent_dim: 8", "  codebook_size: 32", "  scales: [1, 2, 4, 8]"],
                        "val_images_with_unchanged_codes", "its codes (3 of 3", "tokenizer"),
}


def write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.parametrize("task", CASES)
def test_decoder_finetune_trains_the_decoder_only_and_keeps_every_code(cli, tmp_path, task):
    data, model, kept_key, card, what = CASES[task]
    loop = ["train:", "  batch_size: 4", "  max_steps: 4", "  warmup_steps: 2", "  eval_every: 2",
            "  eval_batches: 1", "  dtype: float32"]
    base = tmp_path / "base"
    code, _, err = cli("train", task, "--recipe", write(tmp_path, "c.yaml", [f"task: {task}", "name: c", *data, *model]
                                                        + loop), "-o", base, "-q")
    assert code == 0, err
    tuned = tmp_path / "tuned"
    recipe = write(tmp_path, "ft.yaml", [f"task: {task}", "name: ft", *data, f"  decoder_finetune: {base}",
                                         "model: {}", "train:", "  batch_size: 4", "  max_steps: 40",
                                         "  eval_every: 20", "  eval_batches: 1", "  dtype: float32"])
    code, _, err = cli("train", task, "--recipe", recipe, "-o", tuned, "-q")
    assert code == 0, err
    before, after = load_file(base / "model.safetensors"), load_file(tuned / "model.safetensors")
    assert before.keys() == after.keys()
    for key in before:
        same = bool((before[key] == after[key]).all())
        assert same == (not key.startswith("decoder.")), key  # the decoder moved, nothing else did
    summary = json.loads((tuned / "train_log.json").read_text())["summary"]
    assert summary["best_step"] > 0  # so the weights above are trained ones
    assert summary[kept_key] == 3 and summary["restarts"] == 0
    assert card in (tuned / "README.md").read_text()

    recipe = write(tmp_path, "bad.yaml", [f"task: {task}", "name: ft", *data, f"  decoder_finetune: {base}",
                                          "model:", "  latent_dim: 16"] + loop)
    code, _, err = cli("train", task, "--recipe", recipe, "-o", tmp_path / "bad", "-q")
    assert code != 0 and err.count("\n") <= 2 and f"model.latent_dim is 16 but the {what}" in err
