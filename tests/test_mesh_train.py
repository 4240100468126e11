"""`argen train mesh` on a tiny budget: the folder loads, generates and evaluates, and its model
card carries the measured scores; the shipped recipe validates."""

import json
from pathlib import Path

from argen.lab.recipes import load_train_recipe

ROOT = Path(__file__).resolve().parents[1]


def test_train_mesh_then_generate_and_evaluate(cli, tmp_path):
    recipe = tmp_path / "mesh.yaml"
    recipe.write_text("\n".join([
        "task: mesh", "name: tiny-mesh", "data:", "  dataset: shapes3d", "  train_size: 40", "  val_size: 8",
        "  eval_n: 2", "  eval_max_faces: 6", "model:", "  n_layer: 1", "  n_head: 2", "  d_model: 32", "train:", "  batch_size: 4",
        "  max_steps: 4", "  warmup_steps: 1", "  eval_every: 2", "  eval_batches: 1", "  dtype: float32",
        "sampling:", "  temperature: 1.0", "  cfg_scale: 1.0"]) + "\n")
    out = tmp_path / "m"
    code, _, err = cli("train", "mesh", "--recipe", recipe, "-o", out, "-q")
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["modality"] == "mesh" and config["mesh"]["adjacent"] is True
    summary = json.loads((out / "train_log.json").read_text())["summary"]
    assert summary["eval"]["n"] == 2 and summary["eval"]["parse"] == 1.0
    card = (out / "README.md").read_text()
    assert "shapes3d" in card and "class adherence" in card and f"{summary['val_loss']:.4f}" in card
    code, stdout, err = cli("mesh", "--model", out, "-p", "a short chair", "--seed", "1", "--max-faces", "5",
                            "-o", tmp_path / "x.glb")
    assert code == 0, err
    assert Path(stdout.strip()).is_file()
    code, stdout, err = cli("eval", "mesh", "--model", out, "--n", "0")
    assert code == 2 and err.startswith("Error: --n must be in") and stdout == ""


def test_the_shipped_recipe_validates_and_fits_one_thread():
    from argen.engine.config import TransformerConfig
    from argen.lab.data import shapes3d
    from argen.modalities.mesh.tokenizer import MeshLayout

    r = load_train_recipe(ROOT / "recipes" / "train" / "mesh-shapes.yaml")
    assert r.task == "mesh" and r.train.threads == 1 and r.train.max_minutes <= 60
    lay = MeshLayout(words=list(shapes3d.VOCABULARY), adjacent=r.data.adjacent)
    cfg = TransformerConfig(**lay.transformer_fields(), **r.model)
    assert r.train.save_dtype == "float16" and cfg.num_params() * 2 < 30e6  # weights under 30 MB
