"""The released mesh models by their registry names, end to end on tiny random weights in the
official layouts: `argen mesh --model meshxl-125m` from a Hugging Face cache snapshot of an
``OPTForCausalLM`` (config.json + pytorch_model.bin, as CH3COOK/mesh-xl-125m holds them);
`argen weights pull llama-mesh` from a loopback hub serving a ``LlamaForCausalLM`` in LLaMA-Mesh's
files (four safetensors shards with their index, a plain Llama config.json, the tokenizer files),
then `argen mesh --model llama-mesh -p "a chair"`; `argen models`; the example recipe."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import trimesh

pytest.importorskip("transformers")

from tests.test_hf_cache import hf_snapshot  # noqa: E402
from tests.test_hub_pull import HubServer  # noqa: E402
from tests.test_llama_mesh import TEMPLATE, bpe  # noqa: E402,F401 - bpe is a fixture
from tests.test_meshxl import _folder, _opt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    """An empty Hugging Face cache and argen home, whatever the machine running the tests has."""
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("ARGEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def llama_mesh_files(folder: Path, bpe) -> Path:  # noqa: F811
    """A tiny random Llama in LLaMA-Mesh's hub layout (the file list of the registry entry)."""
    import transformers
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    torch.manual_seed(0)
    eot = bpe.token_to_id("<|eot_id|>")
    cfg = transformers.LlamaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=64, intermediate_size=96,
                                   num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=512, bos_token_id=bpe.token_to_id("<|begin_of_text|>"),
                                   eos_token_id=[bpe.token_to_id("<|end_of_text|>"), eot])
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 0.3)
    model.config.save_pretrained(folder)  # a plain Llama config.json: nothing in it says LLaMA-Mesh
    model.generation_config.save_pretrained(folder)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    keys = sorted(state)
    shards = [keys[i::4] for i in range(4)]
    weight_map = {}
    for i, part in enumerate(shards, 1):
        name = f"model-{i:05d}-of-00004.safetensors"
        save_file({k: state[k] for k in part}, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
    total = sum(v.numel() * v.element_size() for v in state.values())
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                     "weight_map": weight_map}))
    bpe.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|begin_of_text|>",
                                                              "eos_token": "<|eot_id|>", "chat_template": TEMPLATE}))
    (folder / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<|begin_of_text|>",
                                                                "eos_token": "<|eot_id|>"}))
    return folder


def test_meshxl_by_its_registry_name_from_the_hugging_face_cache(cli, tmp_path):
    code, _, err = cli("mesh", "--model", "meshxl-125m", "-o", tmp_path / "none.obj")
    assert code == 1 and "not downloaded" in err and "argen weights pull meshxl-125m" in err
    assert not (tmp_path / "none.obj").exists()
    files = _folder(tmp_path / "files", _opt())  # what `hf download CH3COOK/mesh-xl-125m` leaves
    snap = hf_snapshot(tmp_path / "hf", "CH3COOK/mesh-xl-125m", files)
    code, out, err = cli("mesh", "--model", "meshxl-125m", "-n", "2", "--seed", "7", "--max-faces", "6",
                         "-o", tmp_path / "m-{seed}.ply", "--preview", tmp_path / "m-{seed}.png", "--json", "-q")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["seed"] for r in records] == [7, 8]
    for r in records:
        mesh = trimesh.load(r["path"], force="mesh")
        assert 1 <= len(mesh.faces) <= 6 and abs(mesh.vertices).max() <= 0.5 + 1e-6
        code, info, _ = cli("info", r["path"], "--json")
        meta = json.loads(info)
        assert meta["model"] == "meshxl-125m" and meta["family"] == "meshxl" and meta["model_path"] == str(snap)
        assert meta["constrained"] is True and meta["faces"] == len(mesh.faces)
        assert (tmp_path / f"m-{r['seed']}.png").stat().st_size > 0
    # the registry name and the hub id load the same snapshot: same seed, same mesh
    code, out, err = cli("mesh", "--model", "CH3COOK/mesh-xl-125m", "--seed", "7", "--max-faces", "6",
                         "-o", tmp_path / "h.ply", "-q")
    assert code == 0, err
    assert (trimesh.load(tmp_path / "h.ply").vertices == trimesh.load(tmp_path / "m-7.ply").vertices).all()
    code, _, err = cli("mesh", "--model", "meshxl-125m", "-p", "a chair", "-o", tmp_path / "p.obj")
    assert code == 2 and "takes no text prompt" in err.splitlines()[0] and not (tmp_path / "p.obj").exists()


def test_llama_mesh_pulled_from_the_hub_then_generated(cli, bpe, tmp_path):  # noqa: F811
    files = llama_mesh_files(tmp_path / "files", bpe)
    served = {p.name: p.read_bytes() for p in sorted(files.iterdir())}
    from argen.checkpoints.resolve import load_registry

    assert set(served) == {f.file for f in load_registry().models["llama-mesh"].hub.files}
    hub = HubServer(served, repo="Zhengyi/LLaMA-Mesh")
    # the hub's ETags: LFS files' sha256, the small files' git blob ids
    lfs = {d for n, d in served.items() if n.endswith(".safetensors")}
    hub.etag = lambda data: (hashlib.sha256(data).hexdigest() if data in lfs
                             else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())
    try:
        code, _, err = cli("mesh", "--model", "llama-mesh", "-p", "a chair", "-o", tmp_path / "c.obj")
        assert code == 1 and "argen weights pull llama-mesh" in err
        code, out, err = cli("weights", "pull", "llama-mesh", "--endpoint", hub.url)
        assert code == 0, err
        assert "git-sha1 ok" in err and "sha256 ok" in err
        pulled = Path(out.strip())
        recorded = json.loads((pulled / ".sha256.json").read_text())
        assert recorded == {n: hashlib.sha256(d).hexdigest() for n, d in served.items()}
    finally:
        hub.close()
    code, out, err = cli("mesh", "--model", "llama-mesh", "-p", "a chair", "-n", "2", "--seed", "0",
                         "--max-faces", "10", "--max-new-tokens", "150", "-o", tmp_path / "c-{seed}.obj", "--json", "-q")
    assert code == 0, err
    for r in map(json.loads, out.splitlines()):
        text = Path(r["path"]).read_text()
        mesh = trimesh.load(r["path"], force="mesh")
        assert 1 <= len(mesh.faces) <= 10 and text.count("\nf ") == len(mesh.faces)
        meta = json.loads(cli("info", r["path"], "--json")[1])
        assert meta["model"] == "llama-mesh" and meta["family"] == "llama-mesh" and meta["prompt"] == "a chair"
        assert "model_path" not in meta  # pulled: named by the registry, not by a path
        assert meta["model_sha256"] == recorded["model-00001-of-00004.safetensors"]
    code, _, err = cli("mesh", "--model", "llama-mesh", "-o", tmp_path / "n.obj")
    assert code != 0 and "LLaMA-Mesh needs a text prompt" in err.splitlines()[0]


def test_models_lists_the_released_mesh_models(cli):
    code, out, err = cli("models", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in map(json.loads, out.splitlines())}
    for name, hub_id, family in (("meshxl-125m", "CH3COOK/mesh-xl-125m", "meshxl"),
                                 ("meshxl-350m-sft", "CH3COOK/MeshXL-350m-sft", "meshxl"),
                                 ("x-meshxl-350m", "CH3COOK/x-mesh-xl-350m", "meshxl"),
                                 ("llama-mesh", "Zhengyi/LLaMA-Mesh", "llama-mesh")):
        r = rows[name]
        assert (r["modality"], r["hub_id"], r["family"], r["sha256"]) == ("mesh", hub_id, family, "not pulled")


def test_the_example_recipe_validates(cli, tmp_path):
    recipe = ROOT / "recipes" / "mesh-released.yaml"
    code, out, err = cli("run", recipe, "--dry-run", "-o", tmp_path / "out")
    assert code == 0, err
    assert "model meshxl-125m-sft" in out and "model llama-mesh" in out
    bad = tmp_path / "bad.yaml"
    for old, new, message in (("max_faces: 800", "max_faces: 0", "jobs.0.max_faces"),
                              ("category: chair", "categroy: chair", "did you mean 'category'")):
        bad.write_text(recipe.read_text().replace(old, new))
        code, _, err = cli("run", bad, "--dry-run", "-o", tmp_path / "bad")
        assert code == 1 and message in err and not (tmp_path / "bad").exists()
