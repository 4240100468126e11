"""Hub ids and `cache: huggingface` registry entries load from the Hugging Face cache (the layout
huggingface_hub writes: blobs named by their sha256, linked from snapshots/<commit>/), and a pull
checks every blob; built here offline around a tiny transformers Janus checkpoint."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from argen.cli.app import main

pytest.importorskip("transformers")
huggingface_hub = pytest.importorskip("huggingface_hub")

REPO = "test-org/tiny-janus"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.janus_tiny import save_tiny_janus

    folder = tmp_path_factory.mktemp("janus") / "model"
    save_tiny_janus(folder)
    return folder


@pytest.fixture
def cache(tiny, tmp_path, monkeypatch):
    """A Hugging Face cache holding REPO (every file as a blob named by its sha256) and an argen
    registry whose hub.yaml names it."""
    from huggingface_hub import constants

    root = tmp_path / "hf" / "hub"
    repo = root / f"models--{REPO.replace('/', '--')}"
    snap = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for f in tiny.iterdir():
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snap), snap / f.name)
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "registry.yaml").write_text("models: {}\n")
    (weights / "hub.yaml").write_text(json.dumps({"models": {"tiny-janus": {
        "modality": "image", "params": "1M", "family": "janus", "hub": {"repo_id": REPO, "cache": "huggingface",
                                                      "allow": ["*.json", "*.safetensors"]}}}}))
    monkeypatch.setenv("ARGEN_WEIGHTS_DIR", str(weights))
    return snap


def png_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def test_a_hub_id_and_its_registered_name_load_the_cached_copy(cache, tmp_path, capsys):
    for model, name in ((REPO, "a.png"), ("tiny-janus", "b.png")):
        assert main(["image", "--model", model, "-p", "a cat", "--seed", "0", "-o", str(tmp_path / name), "-q"]) == 0, \
            capsys.readouterr().err
    assert png_size(tmp_path / "a.png") == png_size(tmp_path / "b.png") == (8, 8)
    assert (tmp_path / "a.png").read_bytes() != b""
    assert main(["models", "--json"]) == 0
    row = next(json.loads(line) for line in capsys.readouterr().out.splitlines() if "tiny-janus" in line)
    assert row["family"] == "janus" and row["sha256"] == "ok" and row["path"] == str(cache)


def test_pull_checks_every_blob_and_deletes_a_bad_one(cache, capsys):
    assert main(["weights", "pull", "tiny-janus", "-q"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == str(cache)
    blob = (cache / "model.safetensors").resolve()
    blob.write_bytes(blob.read_bytes()[:-1] + b"\0")  # corrupt the weights in place
    assert main(["weights", "pull", "tiny-janus", "-q"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert "model.safetensors did not match its sha256" in err[0] and not blob.exists()


def test_a_hub_id_not_in_the_cache_is_one_line_naming_the_download(cache, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["image", "--model", "nobody/nothing", "-p", "a cat", "-o", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert "nobody/nothing" in err[0] and "no copy in the Hugging Face cache" in err[0]
    assert len(err) == 2 and "hf download nobody/nothing" in err[1]
    assert not out.exists()


def test_janus_pro_by_its_hub_id_from_hf_home(tiny, tmp_path, monkeypatch, capsys):
    """The real registry entry: `--model deepseek-community/Janus-Pro-1B` (and `janus-pro-1b`) read
    the snapshot `hf download` leaves under $HF_HOME/hub; with none, one line naming the download."""
    import numpy as np
    from PIL import Image

    from tests.test_hf_cache import hf_snapshot

    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    monkeypatch.setenv("ARGEN_HOME", str(tmp_path / "home"))
    for model in ("deepseek-community/Janus-Pro-1B", "janus-pro-1b"):
        assert main(["image", "--model", model, "-p", "a cat", "-o", str(tmp_path / "none.png")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and "not" in err[0] and "Hugging Face cache" in err[0]
        assert "argen weights pull janus-pro-1b" in err[1] and not (tmp_path / "none.png").exists()
    hf_snapshot(tmp_path / "hfhome" / "hub", "deepseek-community/Janus-Pro-1B", tiny)
    for model, name in (("deepseek-community/Janus-Pro-1B", "a.png"), ("janus-pro-1b", "b.png")):
        assert main(["image", "--model", model, "-p", "a cat", "--seed", "0", "-o", str(tmp_path / name), "-q"]) == 0, \
            capsys.readouterr().err
    assert capsys.readouterr().out.split() == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert main(["info", str(tmp_path / "a.png"), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["model"] == "deepseek-community/Janus-Pro-1B" and meta["family"] == "janus"
    assert meta["model_sha256"] == hashlib.sha256((tiny / "model.safetensors").read_bytes()).hexdigest()
    with Image.open(tmp_path / "a.png") as a, Image.open(tmp_path / "b.png") as b:
        assert a.size == (8, 8) and np.array_equal(np.asarray(a), np.asarray(b))
    assert not (tmp_path / "home" / "models").exists()  # used in place, nothing copied
