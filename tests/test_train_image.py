"""`argen train image-tokenizer` then `argen train image` on a tiny budget: the folders load,
generate and evaluate, and their model cards carry the measured scores."""

import json

import pytest
from PIL import Image

from argen.errors import ArgenError
from argen.lab.recipes import load_train_recipe

LOOP = ["train:", "  batch_size: 8", "  max_steps: 6", "  warmup_steps: 2", "  eval_every: 3",
        "  eval_batches: 2", "  dtype: float32"]


def write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def tokenizer_recipe(tmp_path, scales):
    return write(tmp_path, "tok.yaml", ["task: image-tokenizer", "name: tiny-tok", "data:", "  dataset: shapes",
                                        "  train_size: 64", "  val_size: 16", "model:", "  width: 8",
                                        "  latent_dim: 8", "  codebook_size: 32", f"  scales: {scales}"] + LOOP)


@pytest.mark.parametrize("scales, sampler, inputs, raster", [([1, 2, 4, 8], "next-scale", "codes", 0),
                                                            ([1, 2, 4, 8], "next-scale", "features", 0),
                                                            ([1, 2, 4, 8], "next-scale", "codes", 3),
                                                            ([8], "next-token", "codes", 0)])
def test_train_tokenizer_then_transformer_then_generate(cli, tmp_path, scales, sampler, inputs, raster):
    tok_dir = tmp_path / "tok"
    code, _, err = cli("train", "image-tokenizer", "--recipe", tokenizer_recipe(tmp_path, scales), "-o", tok_dir, "-q")
    assert code == 0, err
    summary = json.loads((tok_dir / "train_log.json").read_text())["summary"]
    assert 0 < summary["psnr"] < 60 and 1 <= summary["codes_used"] <= 32
    assert f"{summary['psnr']} dB" in (tok_dir / "README.md").read_text()

    recipe = write(tmp_path, "img.yaml", ["task: image", "name: tiny-img", "data:", "  dataset: shapes",
                                          "  train_size: 64", "  val_size: 16", f"  tokenizer: {tok_dir}", "  eval_prompts: 10",
                                          f"  scale_inputs: {inputs}", f"  raster_scales: {raster}",
                                          f"  parallel_share: {0.5 if raster else 1}",
                                          "model:", "  n_layer: 1", "  n_head: 2", "  d_model: 32",
                                          "  pos_emb: learned"] + LOOP + (["  attention: math"] if raster else []))
    out = tmp_path / "img"
    code, _, err = cli("train", "image", "--recipe", recipe, "-o", out, "-q")
    assert code == 0, err
    assert (out / "tokenizer" / "model.safetensors").is_file()
    log = json.loads((out / "train_log.json").read_text())["summary"]
    assert set(log["eval"]) >= {"single_object", "relation", "heldout", "color"}
    assert "Prompt adherence" in (out / "README.md").read_text()
    config = json.loads((out / "config.json").read_text())
    assert config["image"]["feature_dim"] == (8 if inputs == "features" else 0)  # the tokenizer's latent width
    assert config["image"]["raster_scales"] == raster
    plain = [1, 4, 16, 64] if len(scales) > 1 else None
    assert config["transformer"]["block_sizes"] == ([1] * 21 + [64] if raster else plain)
    code, stdout, err = cli("image", "--model", out, "-p", "a red circle", "--seed", "0", "-o", tmp_path / "x.png")
    assert code == 0, err
    with Image.open(stdout.strip()) as im:
        assert im.size == (64, 64)
    code, stdout, err = cli("eval", "image", "--model", out, "--n", "10", "--json")
    report = json.loads(stdout)
    assert code == 0 and report["sampler"] == sampler and report["prompts"] == 30


@pytest.mark.parametrize("edit, message", [
    (("  scales: [8]", "  scales: [8]\n  depth: 3"), "unknown model key(s) depth"),
    (("  dataset: shapes", "  path: corpus.txt"), "data"),
])
def test_invalid_image_recipes(tmp_path, edit, message):
    p = tokenizer_recipe(tmp_path, [8])
    p.write_text(p.read_text().replace(*edit))
    with pytest.raises(ArgenError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_train_recipe(p)


def test_image_recipe_needs_a_tokenizer(tmp_path):
    p = write(tmp_path, "img.yaml", ["task: image", "name: x", "data:", "  dataset: shapes", "model: {}"])
    with pytest.raises(ArgenError, match="needs data.tokenizer"):
        load_train_recipe(p)


def test_feature_inputs_need_a_next_scale_tokenizer(cli, tmp_path):
    tok_dir = tmp_path / "tok"
    code, _, err = cli("train", "image-tokenizer", "--recipe", tokenizer_recipe(tmp_path, [8]), "-o", tok_dir, "-q")
    assert code == 0, err
    recipe = write(tmp_path, "img.yaml", ["task: image", "name: x", "data:", "  dataset: shapes", "  train_size: 8",
                                          "  val_size: 8", f"  tokenizer: {tok_dir}", "  scale_inputs: features",
                                          "model: {}"] + LOOP)
    code, _, err = cli("train", "image", "--recipe", recipe, "-o", tmp_path / "img", "-q")
    assert code != 0 and "needs a next-scale tokenizer" in err and not (tmp_path / "img").exists()


@pytest.mark.parametrize("data, message", [(["  raster_scales: 4"], "number of scales (4)"),
                                           (["  raster_scales: 1"], "number of scales (1)"),
                                           (["  raster_scales: 2", "  scale_inputs: features"], "cannot be combined")])
def test_raster_scales_are_checked(cli, tmp_path, data, message):
    tok_dir = tmp_path / "tok"
    scales = [8] if "(1)" in message else [1, 2, 4, 8]
    code, _, err = cli("train", "image-tokenizer", "--recipe", tokenizer_recipe(tmp_path, scales), "-o", tok_dir, "-q")
    assert code == 0, err
    recipe = write(tmp_path, "img.yaml", ["task: image", "name: x", "data:", "  dataset: shapes", "  train_size: 8",
                                          "  val_size: 8", f"  tokenizer: {tok_dir}", *data, "model: {}"] + LOOP)
    code, _, err = cli("train", "image", "--recipe", recipe, "-o", tmp_path / "img", "-q")
    assert code != 0 and message in err and len(err.strip().splitlines()) <= 2 and not (tmp_path / "img").exists()
