"""Hub ids as model names: `--model ORG/NAME` loads the Hugging Face cache's snapshot (huggingface_hub's
layout, built here by hand), else argen's pull of the registry entry for that repository, else says in
one line what to download; the registry's pinned sha256 and family apply; the released mesh models'
entries."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from tests.test_llama_mesh import _llama_folder, bpe  # noqa: E402,F401 - bpe is a fixture
from tests.test_meshxl import _folder, _opt  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    """An empty Hugging Face cache and argen home; no HF_HOME from the machine running the tests."""
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("ARGEN_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def meshxl_files(tmp_path_factory) -> Path:
    return _folder(tmp_path_factory.mktemp("m") / "mesh-xl-125m", _opt())


def hf_snapshot(cache: Path, repo_id: str, folder: Path, skip: tuple[str, ...] = ()) -> Path:
    """``folder``'s files as huggingface_hub caches a download: blobs named by etag (sha256 for
    the weights, LFS; the git blob id for small files), snapshot entries linking to them."""
    root = cache / ("models--" + repo_id.replace("/", "--"))
    snap = root / "snapshots" / COMMIT
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name in skip:
            continue
        data = path.read_bytes()
        lfs = path.suffix in (".bin", ".safetensors", ".pth")
        etag = hashlib.sha256(data).hexdigest() if lfs else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        blob = root / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snap / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    return snap


def own_registry(tmp_path: Path, monkeypatch, entries: str) -> None:
    weights = tmp_path / "weights"
    weights.mkdir(exist_ok=True)
    (weights / "registry.yaml").write_text("models:\n" + entries)
    monkeypatch.setenv("ARGEN_WEIGHTS_DIR", str(weights))


def test_a_hub_id_loads_the_hugging_face_cache_snapshot(cli, meshxl_files, tmp_path, monkeypatch):
    snap = hf_snapshot(tmp_path / "hf", "CH3COOK/mesh-xl-125m", meshxl_files)
    code, out, err = cli("mesh", "--model", "CH3COOK/mesh-xl-125m", "--seed", "0", "--max-faces", "5",
                         "-o", tmp_path / "a.obj", "-q")
    assert code == 0, err
    code, info, _ = cli("info", tmp_path / "a.obj", "--json")
    meta = json.loads(info)
    assert meta["model"] == "CH3COOK/mesh-xl-125m" and meta["model_path"] == str(snap) and meta["family"] == "meshxl"
    # HF_HOME/hub is where huggingface_hub looks when HF_HUB_CACHE is not set
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    shutil.move(tmp_path / "hf", tmp_path / "hfhome" / "hub")
    code, _, err = cli("mesh", "--model", "CH3COOK/mesh-xl-125m", "--seed", "0", "--max-faces", "5",
                       "-o", tmp_path / "b.obj", "-q")
    assert code == 0, err
    assert (tmp_path / "a.obj").read_bytes().split(b"\n", 1)[1] == (tmp_path / "b.obj").read_bytes().split(b"\n", 1)[1]


def test_a_pinned_file_that_differs_is_refused(cli, meshxl_files, tmp_path, monkeypatch):
    pin = hashlib.sha256((meshxl_files / "pytorch_model.bin").read_bytes()).hexdigest()
    own_registry(tmp_path, monkeypatch, "  tiny-meshxl:\n    modality: mesh\n    family: meshxl\n    hub:\n"
                 "      repo_id: test/tiny-meshxl\n      files:\n        - file: config.json\n"
                 f"        - file: pytorch_model.bin\n          sha256: {pin}\n")
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(meshxl_files / "config.json", other / "config.json")
    (other / "pytorch_model.bin").write_bytes(b"not the released weights")
    hf_snapshot(tmp_path / "hf", "test/tiny-meshxl", other)
    for model in ("test/tiny-meshxl", "tiny-meshxl"):  # by hub id and by registry name
        code, _, err = cli("mesh", "--model", model, "-o", tmp_path / "m.obj")
        assert code == 1 and "pytorch_model.bin in the Hugging Face cache does not match the registry's sha256" in err
        assert not (tmp_path / "m.obj").exists()
    hf_snapshot(tmp_path / "hf2", "test/tiny-meshxl", meshxl_files)  # the pinned bytes: loads
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf2"))
    code, _, err = cli("mesh", "--model", "tiny-meshxl", "--seed", "0", "--max-faces", "3", "-o", tmp_path / "m.obj")
    assert code == 0, err


@pytest.mark.parametrize("model,message,hint", [
    ("CH3COOK/mesh-xl-1.3b", "model 'CH3COOK/mesh-xl-1.3b' is not downloaded", "argen weights pull meshxl-1.3b"),
    ("meshxl-1.3b", "model 'meshxl-1.3b' is not downloaded", "argen weights pull meshxl-1.3b"),
    ("Zhengyi/LLaMA-Mesh", "model 'Zhengyi/LLaMA-Mesh' is not downloaded", "argen weights pull llama-mesh"),
    ("someone/no-such-model", "model 'someone/no-such-model' is not downloaded", "hf download someone/no-such-model"),
])
def test_offline_with_no_copy_names_what_to_download(cli, tmp_path, model, message, hint):
    code, out, err = cli("mesh", "--model", model, "-p", "a chair", "-o", tmp_path / "m.obj")
    lines = err.strip().splitlines()
    assert code == 1 and out == "" and len(lines) == 2
    assert lines[0].startswith(f"Error: {message}") and hint in lines[1]


def test_a_snapshot_missing_the_files_argen_takes_elsewhere(cli, meshxl_files, tmp_path):
    # x-mesh-xl's hub repository has no CLIP tokenizer: the registry fetches it from MeshXL's GitHub
    hf_snapshot(tmp_path / "hf", "CH3COOK/x-mesh-xl-350m", meshxl_files)
    code, _, err = cli("mesh", "--model", "CH3COOK/x-mesh-xl-350m", "-p", "a table", "-o", tmp_path / "m.obj")
    assert code == 1 and "lacks openai/clip-vit-base-patch32/tokenizer.json" in err
    assert "argen weights pull x-meshxl-350m" in err


def test_a_hub_id_falls_back_to_argens_pull(cli, meshxl_files, tmp_path, monkeypatch):
    own_registry(tmp_path, monkeypatch, "  tiny-meshxl:\n    modality: mesh\n    family: meshxl\n    hub:\n"
                 "      repo_id: test/tiny-meshxl\n      files:\n        - file: config.json\n"
                 "        - file: pytorch_model.bin\n")
    code, _, err = cli("mesh", "--model", "test/tiny-meshxl", "-o", tmp_path / "m.obj")
    assert code == 1 and "argen weights pull tiny-meshxl" in err
    pulled = tmp_path / "home" / "models" / "tiny-meshxl"
    shutil.copytree(meshxl_files, pulled)  # copied by hand, as on an offline machine
    # unpinned and not yet recorded: only the hub can say what the files should be
    code, _, err = cli("weights", "pull", "test/tiny-meshxl", "--endpoint", "http://127.0.0.1:9")  # by hub id
    assert code == 1 and "cannot download config.json from test/tiny-meshxl" in err
    (pulled / ".sha256.json").write_text(json.dumps({f: hashlib.sha256((pulled / f).read_bytes()).hexdigest()
                                                     for f in ("config.json", "pytorch_model.bin")}))
    code, out, err = cli("weights", "pull", "test/tiny-meshxl", "--endpoint", "http://127.0.0.1:9")
    assert code == 0 and err.count("present, sha256 ok") == 2 and Path(out.strip()) == pulled
    code, _, err = cli("mesh", "--model", "test/tiny-meshxl", "--seed", "0", "--max-faces", "4", "-o", tmp_path / "m.obj")
    assert code == 0, err


def test_the_registry_names_the_family_a_config_cannot_tell(cli, bpe, tmp_path, monkeypatch):  # noqa: F811
    import argen
    from argen.modalities.loading import modality_of

    plain = _llama_folder(tmp_path / "plain", bpe)  # config.json: a plain Llama's, no LLaMA-Mesh marker
    assert "llama-mesh" not in (plain / "config.json").read_text().lower()
    hf_snapshot(tmp_path / "hf", "test/tiny-llama-mesh", plain)
    assert modality_of("test/tiny-llama-mesh") == "text"  # unregistered: just a Llama
    own_registry(tmp_path, monkeypatch, "  tiny-llama-mesh:\n    modality: mesh\n    family: llama-mesh\n    hub:\n"
                 "      repo_id: test/tiny-llama-mesh\n      files:\n        - file: config.json\n"
                 "        - file: model.safetensors\n        - file: tokenizer.json\n"
                 "        - file: tokenizer_config.json\n")
    assert modality_of("test/tiny-llama-mesh") == "mesh"
    pipe = argen.load("test/tiny-llama-mesh", device="cpu")
    assert type(pipe).__name__ == "LlamaMeshPipeline"
    code, out, err = cli("mesh", "--model", "test/tiny-llama-mesh", "-p", "a chair", "--seed", "0", "--max-faces", "4",
                         "--max-new-tokens", "60", "-o", tmp_path / "c.obj", "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["faces"] >= 1


def test_the_registry_holds_the_released_mesh_models():
    from argen.checkpoints.resolve import load_registry

    reg = load_registry().models
    want = {"meshxl-125m": "CH3COOK/mesh-xl-125m", "meshxl-350m": "CH3COOK/mesh-xl-350m",
            "meshxl-1.3b": "CH3COOK/mesh-xl-1.3b", "x-meshxl-350m": "CH3COOK/x-mesh-xl-350m",
            "meshxl-125m-sft": "CH3COOK/MeshXL-125m-sft", "meshxl-350m-sft": "CH3COOK/MeshXL-350m-sft",
            "meshxl-1.3b-sft": "CH3COOK/MeshXL-1.3b-sft", "llama-mesh": "Zhengyi/LLaMA-Mesh"}
    for name, repo in want.items():
        e = reg[name]
        assert e.modality == "mesh" and e.hub.repo_id == repo and e.params and e.hub.convert is None
        assert e.family == ("llama-mesh" if name == "llama-mesh" else "meshxl")
        files = {f.file: f for f in e.hub.files}
        assert "config.json" in files
        if e.family == "meshxl":  # each size's config.json from MeshXL's GitHub at a fixed commit, pinned
            assert files["config.json"].url.startswith("https://raw.githubusercontent.com/OpenMeshLab/MeshXL/")
            assert files["config.json"].sha256
    assert [f.file for f in reg["meshxl-350m-sft"].hub.files if f.file.endswith(".pth")] == [
        f"meshxl-350m-{c}.pth" for c in ("bench", "chair", "lamp", "table")]
    shards = [f for f in reg["llama-mesh"].hub.files if f.file.endswith(".safetensors")]
    assert [f.file for f in shards] == [f"model-{i:05d}-of-00004.safetensors" for i in range(1, 5)]
