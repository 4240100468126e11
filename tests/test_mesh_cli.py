"""`argen mesh`: outputs in every format (reloaded with trimesh, metadata read back by
`argen info`), previews, errors; the pipeline and the evaluation on a tiny random model; one
smoke test of the bundled model."""

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from argen.checkpoints.argen_format import save_model_dir
from argen.lab.data import shapes3d
from argen.modalities.mesh.tokenizer import MeshLayout
from tests.conftest import tiny_model

BUNDLED = Path(__file__).resolve().parents[1] / "weights" / "shapes3d-mesh"


@pytest.fixture(scope="module")
def mesh_model(tmp_path_factory) -> Path:
    """An argen mesh model folder with random weights (adjacent tokenisation)."""
    out = tmp_path_factory.mktemp("meshmodel") / "tiny-mesh"
    lay = MeshLayout(words=list(shapes3d.VOCABULARY), max_seq_len=200)
    model = tiny_model(sharp=5.0, **lay.transformer_fields())
    save_model_dir(out, model, "mesh", {"name": "tiny-mesh", "mesh": lay.to_dict(),
                                        "sampling": {"cfg_scale": 1.5, "temperature": 1.0}})
    return out


@pytest.mark.parametrize("suffix", [".obj", ".glb", ".ply", ".stl"])
def test_every_format_reloads_and_carries_metadata(cli, mesh_model, tmp_path, suffix):
    code, out, err = cli("mesh", "--model", mesh_model, "-p", "a tall lamp", "--seed", "3", "--max-faces", "6",
                         "-o", tmp_path / f"m-{{seed}}{suffix}")
    assert code == 0, err
    path = Path(out.split()[0])
    assert path == tmp_path / f"m-3{suffix}"
    loaded = trimesh.load(path, force="mesh")
    assert 1 <= len(loaded.faces) <= 6
    code, info, _ = cli("info", path, "--json")
    meta = json.loads(info)
    assert code == 0 and meta["prompt"] == "a tall lamp" and meta["seed"] == 3 and meta["modality"] == "mesh"
    assert meta["sampling"]["cfg_scale"] == 1.5 and meta["max_faces"] == 6 and meta["tokenization"] == "adjacent"
    assert meta["faces"] == len(loaded.faces)
    assert not list(tmp_path.glob(".*.part"))  # atomic: no temporary left behind


def test_same_seed_same_bytes_and_preview(cli, mesh_model, tmp_path):
    args = ("mesh", "--model", mesh_model, "-p", "a wide table", "--max-faces", "8", "--top-k", "20", "-q")
    assert cli(*args, "--seed", "5", "-o", tmp_path / "a.obj", "--preview", tmp_path / "a.png")[0] == 0
    assert cli(*args, "--seed", "5", "-o", tmp_path / "b.obj")[0] == 0
    assert (tmp_path / "a.obj").read_bytes() == (tmp_path / "b.obj").read_bytes()
    from PIL import Image

    with Image.open(tmp_path / "a.png") as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 1  # something was drawn
    code, out, _ = cli("info", tmp_path / "a.png")
    assert code == 0 and "a wide table" in out


def test_several_meshes_and_json(cli, mesh_model, tmp_path):
    code, out, _ = cli("mesh", "--model", mesh_model, "-p", "a cube", "-n", "3", "--seed", "0", "--max-faces", "4",
                       "-o", tmp_path / "c.ply", "--json")
    recs = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["seed"] for r in recs] == [0, 1, 2]
    assert [Path(r["path"]).name for r in recs] == ["c-0.ply", "c-1.ply", "c-2.ply"]
    assert all(1 <= r["faces"] <= 4 for r in recs)


@pytest.mark.parametrize("args, words", [
    (["-p", "a purple dragon"], ["dragon", "cube", "lamp", "tall"]),  # the error lists the known words
    (["-p", "a lamp", "--max-faces", "0"], ["--max-faces"]),
    (["-p", "a lamp", "-o", "out.fbx"], [".fbx", ".obj", ".glb", ".ply", ".stl"]),
    (["-p", "a lamp", "-o", "out.obj", "--preview", "p.jpg"], ["PNG"]),
    (["-p", "a lamp", "--top-p", "2"], ["top"]),
])
def test_errors_are_one_line(cli, mesh_model, tmp_path, args, words):
    code, out, err = cli("mesh", "--model", mesh_model, *args)
    assert code in (1, 2) and out == "" and "Traceback" not in err
    assert err.startswith("Error:")
    for w in words:
        assert w in err


def test_pipeline_and_evaluation_on_a_tiny_model(mesh_model):
    from argen.lab.eval.mesh import check, evaluate_pipeline, nearest_class
    from argen.modalities.mesh.pipeline import MeshPipeline

    pipe = MeshPipeline.from_pretrained(str(mesh_model), device="cpu")
    report = evaluate_pipeline(pipe, 3, max_faces=6)
    assert report["parse"] == 1.0 and report["valid"] == 1.0 and report["n"] == 3
    assert report["ceiling"]["adherence"] == 1.0  # the held-out meshes are their own class
    assert 0 <= report["adherence"] <= 1 and report["faces"] <= 6
    # the analysis itself: true shapes are recognised, broken meshes are flagged
    for obj in ("cube", "table", "cone"):
        assert nearest_class(shapes3d.sample(9, 0, "val", obj=obj).mesh)[0] == obj
    bad = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [2, 0, 0]], faces=[[0, 1, 2]], process=False)
    assert not check(bad)["valid"]


@pytest.mark.skipif(not (BUNDLED / "model.safetensors").is_file(), reason="bundled mesh model not trained yet")
def test_bundled_model_smoke(cli, tmp_path):
    code, out, err = cli("mesh", "--model", BUNDLED, "-p", "a cube", "--seed", "0", "-o", tmp_path / "cube.obj")
    assert code == 0, err
    mesh = trimesh.load(out.split()[0], force="mesh")
    assert len(mesh.faces) >= 1
    code, info, _ = cli("info", out.split()[0])
    assert code == 0 and "a cube" in info and "shapes3d-mesh" in info
