"""ImageNet class models end to end: `argen weights pull` fetches VAR files in the official layout
from a loopback hub and converts them, then `argen image --class-label` writes PNGs with their
metadata; LlamaGen folders converted by `argen.checkpoints.convert` go through the same command."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_hub_pull import REPO, HubServer

from argen.io.metadata import read_metadata
from argen.modalities.image.var.model import VAR, VARConfig
from argen.modalities.image.var.vqvae import VQVAE, VQVAEConfig

torch.set_num_threads(1)
SCALES = [1, 2, 3, 4]
TINY_VAE = dict(vocab_size=64, z_channels=8, ch=32, ch_mult=[1, 2], num_res_blocks=1, patch_nums=SCALES)


def official_var_files(tmp_path):
    torch.manual_seed(0)
    vae = VQVAE(VQVAEConfig(**TINY_VAE))
    var = VAR(VARConfig(depth=2, width=64, num_heads=4, num_classes=1000, vocab_size=64, vae_channels=8,
                        patch_nums=SCALES))
    with torch.no_grad():
        var.head.weight.mul_(10)
    torch.save(vae.state_dict(), tmp_path / "vae.pth")  # plain state dicts, as the VAR release
    torch.save(var.state_dict(), tmp_path / "var_d2.pth")
    return {p: (tmp_path / p).read_bytes() for p in ("vae.pth", "var_d2.pth")}


@pytest.fixture
def var_hub(tmp_path, monkeypatch):
    server = HubServer(official_var_files(tmp_path))
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "registry.yaml").write_text(json.dumps({"models": {"tiny-var": {
        "modality": "image", "description": "a random 2-block VAR",
        "hub": {"repo_id": REPO, "convert": "var", "options": {"vae": TINY_VAE},
                "files": [{"file": "vae.pth"}, {"file": "var_d2.pth"}]}}}}))
    monkeypatch.setenv("ARGEN_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("ARGEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    yield server
    server.close()


def test_pull_converts_then_class_labels_make_images(cli, var_hub, tmp_path):
    code, _, err = cli("image", "--model", "tiny-var", "--class-label", "207")
    assert code == 1 and "argen weights pull tiny-var" in err  # not pulled yet
    code, out, err = cli("weights", "pull", "tiny-var", "--endpoint", var_hub.url)
    assert code == 0, err
    assert "converting" in err and (tmp_path / "home" / "models" / "tiny-var" / "argen" / "config.json").is_file()
    code, out, _ = cli("models", "--json")
    row = json.loads(out.strip())
    assert row["sha256"] == "ok" and row["params"] > 0
    pattern = str(tmp_path / "dog-{i}.png")
    code, out, err = cli("image", "--model", "tiny-var", "--class-label", "golden_retriever", "-n", "3",
                         "--seed", "5", "-o", pattern, "--batch-size", "2")
    assert code == 0, err
    paths = out.split()
    assert len(paths) == 3
    images = [np.asarray(Image.open(p)) for p in paths]
    assert all(im.shape == (8, 8, 3) for im in images)  # the tiny VAE's 2x downsampling of a 4x4 grid
    meta = read_metadata(paths[1])
    assert meta["class_label"] == 207 and meta["class_name"] == "golden retriever" and meta["seed"] == 6
    assert meta["sampler"] == "next-scale" and meta["sampling"]["cfg_schedule"] == "var"
    # the same seed gives the same bytes alone as inside the batch
    code, out, err = cli("image", "--model", "tiny-var", "--class-label", "207", "--seed", "6", "-o", str(tmp_path / "alone.png"))
    assert code == 0, err
    assert (tmp_path / "alone.png").read_bytes() == open(paths[1], "rb").read()


@pytest.mark.parametrize("args, words", [
    (["--class-label", "crane"], "several ImageNet classes"),
    (["--class-label", "1000"], "out of range"),
    (["--class-label", "207", "--prompt", "a red circle"], "--prompt"),
    (["--class-label", "207", "--cfg-interval", "-3"], None),
])
def test_bad_class_flags(cli, var_hub, args, words, tmp_path):
    assert cli("weights", "pull", "tiny-var", "--endpoint", var_hub.url, "-q")[0] == 0
    out = tmp_path / "x.png"
    code, _, err = cli("image", "--model", "tiny-var", *args, "-o", str(out))
    if words is None:  # -3 means "guide every token" like -1
        assert code == 0 and "cfg" not in err.lower() and out.is_file()
        return
    assert code == 2 and words in err and err.count("\n") <= 2 and not out.exists()


def test_llamagen_folder_generates_through_the_same_command(cli, tmp_path):
    from test_llamagen import SMALL_VQ, official_gpt_state, small_cfg  # the official layout, tiny sizes

    from argen.modalities.image.llamagen.convert import convert_llamagen
    from argen.modalities.image.llamagen.vq import LlamaGenVQ

    torch.manual_seed(0)
    torch.save({"model": LlamaGenVQ(SMALL_VQ).state_dict()}, tmp_path / "vq.pt")
    torch.save({"model": official_gpt_state()}, tmp_path / "gpt.pt")
    folder = convert_llamagen(tmp_path / "vq.pt", tmp_path / "gpt.pt", tmp_path / "lg", cfg=small_cfg(), vq_cfg=SMALL_VQ)
    code, out, err = cli("image", "--model", str(folder), "--class-label", "3", "-n", "2", "--seed", "1", "--cfg", "3",
                         "--cfg-interval", "4", "-o", str(tmp_path / "lg-{seed}.png"), "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["seed"] for r in rows] == [1, 2] and rows[0]["sampler"] == "next-token"
    im = np.asarray(Image.open(rows[0]["path"]))
    assert im.shape == (8, 8, 3)  # a 4x4 code grid through the small tokenizer's 2x upsampling
    meta = read_metadata(rows[0]["path"])
    assert meta["family"] == "llamagen" and meta["sampling"]["cfg_tokens"] == 6 and meta["sampling"]["cfg_scale"] == 3
    code, _, err = cli("image", "--model", str(folder), "--class-label", "10", "-o", str(tmp_path / "x.png"))
    assert code == 2 and "out of range" in err  # the tiny model knows 10 classes


def test_batch_recipes_take_class_labels(cli, var_hub, tmp_path):
    assert cli("weights", "pull", "tiny-var", "--endpoint", var_hub.url, "-q")[0] == 0
    recipe = tmp_path / "classes.yaml"
    recipe.write_text("""
jobs:
  - name: dogs
    modality: image
    model: tiny-var
    prompts: ["207", "golden_retriever", "tench"]
    seeds: [3]
    output: "{job}/{prompt_index}.png"
""")
    code, _, err = cli("run", recipe, "-o", tmp_path / "out")
    assert code == 0, err
    files = [tmp_path / "out" / "dogs" / f"{i}.png" for i in range(3)]
    assert [read_metadata(f)["class_label"] for f in files] == [207, 207, 0]
    pixels = [np.asarray(Image.open(f)) for f in files]
    assert np.array_equal(pixels[0], pixels[1])  # the same class and seed: the same image
    assert not np.array_equal(pixels[0], pixels[2])
    code, out, _ = cli("image", "--model", "tiny-var", "--class-label", "tench", "--seed", "3", "-o", tmp_path / "t.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "t.png")), pixels[2])  # equal to `argen image`


def test_weights_convert_cli_errors(cli, tmp_path):
    (tmp_path / "a.pth").write_bytes(b"not a checkpoint")
    cases = [
        (["--family", "dalle", tmp_path / "a.pth", tmp_path / "a.pth"], 2, "--family"),
        (["--family", "var", tmp_path / "a.pth"], 2, "two files"),
        (["--family", "var", tmp_path / "a.pth", tmp_path / "missing.pth"], 1, "missing.pth not found"),
        (["--family", "var", tmp_path / "a.pth", tmp_path / "a.pth"], 1, "a.pth"),
    ]
    for args, want_code, words in cases:
        code, _, err = cli("weights", "convert", *args, "-o", tmp_path / "out")
        assert code == want_code and words in err and err.startswith("Error:"), (args, err)
        assert not (tmp_path / "out" / "config.json").exists()



def test_a_pull_that_replaces_a_file_converts_again(cli, var_hub, tmp_path):
    import hashlib
    import io

    assert cli("weights", "pull", "tiny-var", "--endpoint", var_hub.url, "-q")[0] == 0
    folder = tmp_path / "home" / "models" / "tiny-var"
    state = torch.load(io.BytesIO(var_hub.files["var_d2.pth"]), weights_only=True)
    state["head.bias"] += 1  # the hub now serves other weights; the local copy is gone
    buf = io.BytesIO()
    torch.save(state, buf)
    var_hub.files["var_d2.pth"] = buf.getvalue()
    (folder / "var_d2.pth").unlink()
    code, _, err = cli("weights", "pull", "tiny-var", "--endpoint", var_hub.url)
    assert code == 0 and "converting" in err, err
    source = json.loads((folder / "argen" / "config.json").read_text())["source"]["var_d2.pth"]["sha256"]
    assert source == hashlib.sha256(buf.getvalue()).hexdigest()  # converted from the new file, not kept stale
