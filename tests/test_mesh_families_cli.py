"""`argen mesh --model DIR` with released mesh families, on tiny random models saved in their
official layouts (the model-level tests' builders): MeshXL unconditional and per category,
x-mesh-xl and LLaMA-Mesh from a prompt; every suffix, --preview, -n, --max-faces, a batch
recipe, the Python API, `argen eval mesh`; each bad request is one line and writes nothing."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

pytest.importorskip("transformers")

from tests.test_llama_mesh import _llama_folder, bpe  # noqa: E402,F401 - bpe is a fixture
from tests.test_meshxl import _folder, _opt, _released_config  # noqa: E402
from tests.test_meshxl_text import XMeshXL, _clip_like_tokenizer  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a shared machine two can be far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _fine_tune(path: Path, seed: int) -> None:
    """A MeshXL training checkpoint (utils/io.py): the wrapper's prefix, optimizer, argparse Namespace."""
    state = {f"transformer.{k}": v for k, v in _opt(seed=seed).state_dict().items()}
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 1,
                "args": argparse.Namespace(dataset=f"sft.shapenet_{path.stem.rsplit('-', 1)[1]}")}, path)


@pytest.fixture(scope="module")
def meshxl(tmp_path_factory) -> Path:
    """mesh-xl-125m's layout (config.json + pytorch_model.bin) plus a chair fine-tune beside it."""
    folder = _folder(tmp_path_factory.mktemp("meshxl") / "mesh-xl-125m", _opt())
    _fine_tune(folder / "meshxl-125m-chair.pth", seed=9)
    return folder


@pytest.fixture(scope="module")
def sft_only(tmp_path_factory) -> Path:
    """MeshXL-125m-sft's layout: fine-tunes only (two categories), with the size's config.json."""
    folder = tmp_path_factory.mktemp("sft") / "meshxl-125m-sft"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(_released_config(_opt())))
    _fine_tune(folder / "meshxl-125m-chair.pth", seed=9)
    _fine_tune(folder / "meshxl-125m-lamp.pth", seed=10)
    return folder


@pytest.fixture(scope="module")
def xmeshxl(tmp_path_factory) -> Path:
    ref = XMeshXL().eval()
    folder = tmp_path_factory.mktemp("x") / "x-mesh-xl-350m"
    (folder / "openai" / "clip-vit-base-patch32").mkdir(parents=True)
    torch.save(ref.state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(_released_config(ref.transformer, "350m")))
    _clip_like_tokenizer().save(str(folder / "openai" / "clip-vit-base-patch32" / "tokenizer.json"))
    return folder


@pytest.fixture(scope="module")
def llama_mesh(tmp_path_factory, bpe) -> Path:  # noqa: F811
    folder = _llama_folder(tmp_path_factory.mktemp("lm") / "LLaMA-Mesh", bpe)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "_name_or_path": "Zhengyi/LLaMA-Mesh"}))
    return folder


def _meta(cli, path: Path) -> dict:
    code, out, err = cli("info", path, "--json")
    assert code == 0, err
    return json.loads(out)


def _in_unit_cube(path: Path) -> trimesh.Trimesh:
    mesh = trimesh.load(path, force="mesh")
    assert len(mesh.faces) >= 1
    assert np.abs(np.asarray(mesh.vertices)).max() <= 0.5 + 1e-6
    return mesh


@pytest.mark.parametrize("suffix", [".obj", ".glb", ".ply", ".stl"])
def test_meshxl_unconditional_in_every_format(cli, meshxl, tmp_path, suffix):
    code, out, err = cli("mesh", "--model", meshxl, "-n", "2", "--seed", "4", "--max-faces", "7",
                         "-o", tmp_path / f"m-{{seed}}{suffix}", "--preview", tmp_path / "p-{seed}.png", "-q")
    assert code == 0, err
    paths = out.split()
    assert paths == [str(tmp_path / f"m-4{suffix}"), str(tmp_path / "p-4.png"),
                     str(tmp_path / f"m-5{suffix}"), str(tmp_path / "p-5.png")]
    for seed in (4, 5):
        mesh = _in_unit_cube(tmp_path / f"m-{seed}{suffix}")
        meta = _meta(cli, tmp_path / f"m-{seed}{suffix}")
        assert meta["family"] == "meshxl" and meta["seed"] == seed and meta["max_faces"] == 7
        assert meta["constrained"] is True and "category" not in meta and "prompt" not in meta
        assert meta["faces"] == len(mesh.faces) <= 7 and meta["sampling"]["top_k"] == 50
        assert _meta(cli, tmp_path / f"p-{seed}.png")["seed"] == seed


def test_meshxl_same_seed_same_bytes_whatever_the_batch(cli, meshxl, tmp_path):
    args = ("mesh", "--model", meshxl, "-n", "3", "--seed", "0", "--max-faces", "6", "-q")
    assert cli(*args, "-o", tmp_path / "a-{seed}.obj")[0] == 0
    assert cli(*args, "--batch-size", "1", "-o", tmp_path / "b-{seed}.obj")[0] == 0
    for s in range(3):
        assert (tmp_path / f"a-{s}.obj").read_bytes() == (tmp_path / f"b-{s}.obj").read_bytes()
    assert (tmp_path / "a-0.obj").read_bytes() != (tmp_path / "a-1.obj").read_bytes()


def test_meshxl_categories(cli, meshxl, sft_only, tmp_path):
    args = ("--seed", "1", "--max-faces", "6", "-q")
    assert cli("mesh", "--model", meshxl, *args, "-o", tmp_path / "base.obj")[0] == 0
    code, _, err = cli("mesh", "--model", meshxl, "--category", "chair", *args, "-o", tmp_path / "chair.obj")
    assert code == 0, err
    assert _meta(cli, tmp_path / "chair.obj")["category"] == "chair"
    assert (tmp_path / "base.obj").read_bytes() != (tmp_path / "chair.obj").read_bytes()
    # the fine-tune file alone (its config.json beside it) needs no --category
    code, _, err = cli("mesh", "--model", meshxl / "meshxl-125m-chair.pth", *args, "-o", tmp_path / "alone.obj")
    assert code == 0, err
    strip = lambda p: p.read_text().split("\n", 1)[1]  # noqa: E731 - the mesh, without the metadata line
    assert strip(tmp_path / "alone.obj") == strip(tmp_path / "chair.obj")
    code, _, err = cli("mesh", "--model", sft_only, "--category", "lamp", *args, "-o", tmp_path / "lamp.ply")
    assert code == 0, err
    assert _meta(cli, tmp_path / "lamp.ply")["category"] == "lamp"


def test_xmeshxl_and_llama_mesh_from_a_prompt(cli, xmeshxl, llama_mesh, tmp_path):
    code, out, err = cli("mesh", "--model", xmeshxl, "-p", "3d model of a table", "-p", "a tall lamp", "--seed", "0",
                         "--max-faces", "5", "-o", tmp_path / "x-{i}.glb", "-q")
    assert code == 0, err
    for i, prompt in enumerate(["3d model of a table", "a tall lamp"]):
        _in_unit_cube(tmp_path / f"x-{i}.glb")
        meta = _meta(cli, tmp_path / f"x-{i}.glb")
        assert meta["prompt"] == prompt and meta["sampling"]["temperature"] == 0.1  # x-mesh-xl's default
    code, out, err = cli("mesh", "--model", llama_mesh, "-p", "a wooden chair", "-n", "2", "--seed", "3",
                         "--max-faces", "12", "--max-new-tokens", "160", "-o", tmp_path / "c-{seed}.obj", "--json", "-q")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["seed"] for r in records] == [3, 4] and all(1 <= r["faces"] <= 12 for r in records)
    for r in records:
        mesh = _in_unit_cube(Path(r["path"]))
        grid = (np.asarray(mesh.vertices) + 0.5) * 63  # LLaMA-Mesh's integer grid, kept
        assert np.allclose(grid, np.round(grid), atol=1e-4)
        meta = _meta(cli, Path(r["path"]))
        assert meta["family"] == "llama-mesh" and meta["max_new_tokens"] == 160 and meta["prompt"] == "a wooden chair"


BAD = [
    ("meshxl", ["-p", "a chair"], "takes no text prompt"),
    ("meshxl", ["--category", "sofa"], "unknown category 'sofa' (this MeshXL has: chair)"),
    ("meshxl", ["--max-faces", "29"], "--max-faces must be in 1..28"),
    ("meshxl", ["--max-faces", "0"], "--max-faces 0"),
    ("meshxl", ["--cfg", "2"], "no classifier-free guidance"),
    ("meshxl", ["--max-new-tokens", "50"], "set by --max-faces"),
    ("sft_only", [], "holds only category fine-tunes"),
    ("xmeshxl", [], "x-mesh-xl needs a text prompt"),
    ("llama_mesh", [], "LLaMA-Mesh needs a text prompt"),
    ("llama_mesh", ["-p", "a chair", "--category", "chair"], "LLaMA-Mesh has no categories"),
    ("llama_mesh", ["-p", "a chair", "--max-faces", "501"], "--max-faces must be in 1..500"),
    ("llama_mesh", ["-p", "a chair", "--max-new-tokens", "10"], "--max-new-tokens must be in"),
    ("llama_mesh", ["-p", "a chair", "--max-new-tokens", "100000"], "--max-new-tokens must be in"),
]


@pytest.mark.parametrize("model,args,message", BAD, ids=[f"{m}-{' '.join(a)}" for m, a, _ in BAD])
def test_bad_requests_are_one_line_and_write_nothing(cli, request, tmp_path, model, args, message):
    out = tmp_path / "out"
    code, stdout, err = cli("mesh", "--model", request.getfixturevalue(model), *args, "--seed", "0", "-o",
                            out / "m.obj")
    assert code != 0 and stdout == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith("Error: ") and message in lines[0], err
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("Hint: ")) and "Traceback" not in err
    assert not out.exists()


def test_the_bundled_model_refuses_the_released_families_flags(cli, tmp_path):
    for args, flag in ((["--category", "chair"], "--category"), (["--unconstrained"], "--unconstrained"),
                       (["--max-new-tokens", "9"], "--max-new-tokens")):
        code, _, err = cli("mesh", "-p", "a tall lamp", *args, "-o", tmp_path / "m.obj")
        assert code == 2 and err.startswith(f"Error: {flag}: shapes3d-mesh") and not (tmp_path / "m.obj").exists()


def test_a_batch_recipe_runs_each_family(cli, meshxl, llama_mesh, tmp_path):
    recipe = tmp_path / "mesh.yaml"
    recipe.write_text(f"""jobs:
  - name: meshxl
    modality: mesh
    model: {meshxl}
    seeds: [0, 1]
    max_faces: 6
    output: "{{job}}/{{seed}}.ply"
  - name: chairs
    modality: mesh
    model: {meshxl}
    category: chair
    seeds: [2]
    max_faces: 6
    output: "{{job}}/{{seed}}.stl"
  - name: llama
    modality: mesh
    model: {llama_mesh}
    prompts: ["a wooden chair"]
    seeds: [0]
    max_faces: 8
    max_new_tokens: 120
    output: "{{job}}/{{seed}}.obj"
""")
    out = tmp_path / "out"
    code, _, err = cli("run", recipe, "-o", out, "--quiet")
    assert code == 0, err
    for path in ("meshxl/0.ply", "meshxl/1.ply", "chairs/2.stl", "llama/0.obj"):
        _in_unit_cube(out / path)
    # the recipe's samples are the command's: same flags, same bytes
    assert cli("mesh", "--model", meshxl, "--seed", "1", "--max-faces", "6", "-o", tmp_path / "one.ply", "-q")[0] == 0
    assert _mesh_part(out / "meshxl/1.ply") == _mesh_part(tmp_path / "one.ply")


def _mesh_part(path: Path) -> bytes:
    """A PLY's bytes without its metadata comment (the recipe records its job too)."""
    return b"\n".join(line for line in path.read_bytes().split(b"\n") if not line.startswith(b"comment argen"))


def test_the_python_api_and_the_family_from_the_config(meshxl, llama_mesh):
    import argen
    from argen.modalities.loading import modality_of

    assert modality_of(str(llama_mesh)) == "mesh"  # a Llama config, but LLaMA-Mesh's: not a text model
    pipe = argen.load(str(meshxl), device="cpu")
    outs = pipe(n=2, seed=0, max_faces=5, category="chair")
    assert [o.seed for o in outs] == [0, 1] and all(o.parsed and 1 <= len(o.mesh.faces) <= 5 for o in outs)
    free = pipe(n=4, seed=0, max_faces=5, unconstrained=True)
    assert all(o.metadata["constrained"] is False for o in free)


def test_eval_reports_both_modes(cli, meshxl):
    code, out, err = cli("eval", "mesh", "--model", meshxl, "--n", "8", "--max-faces", "10", "--json", "-q")
    assert code == 0, err
    report = json.loads(out)
    on, off = report["constrained"], report["unconstrained"]
    print(f"\ntiny random MeshXL, 8 samples, max 10 faces: constrained {on}; unconstrained {off}")
    assert report["family"] == "meshxl" and on["n"] == off["n"] == 8
    assert on["parse"] == 1.0 and on["clean"] == 1.0 and 1 <= on["faces"] <= 10
    assert off["parse"] < 1.0  # a random model alone does not follow MeshXL's serialisation
    code, out, err = cli("eval", "mesh", "--model", meshxl, "--n", "2", "--max-faces", "4", "-q")
    assert code == 0 and "constrained" in out and "no degenerate or duplicate face" in out
