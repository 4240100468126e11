"""`argen train crystal`: a tiny run on a few Perov-5-style CIFs writes a loadable crystal model."""

import json

import pytest

pytest.importorskip("pymatgen")

from pymatgen.core import Lattice, Structure  # noqa: E402

from argen.errors import ArgenError  # noqa: E402
from argen.lab.recipes import load_train_recipe  # noqa: E402


def write_csv(path, n=12):
    rows = []
    for i in range(n):
        a = 3.8 + 0.05 * i
        s = Structure(Lattice.cubic(a), ["Sr" if i % 2 else "Ba", "Ti", "O", "O", "O"],
                      [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
        rows.append(f'{i},"{s.to(fmt="cif")}",{s.composition.reduced_formula}\n')
    path.write_text("material_id,cif,formula\n" + "".join(rows))
    return path


def recipe(tmp_path, csv, extra=""):
    p = tmp_path / "r.yaml"
    p.write_text(f"""task: crystal
name: tiny-crystal
data:
  dataset: crystal-csv
  path: {csv}
  val_size: 2
{extra}model:
  n_layer: 1
  n_head: 2
  d_model: 32
train:
  seq_len: 64
  batch_size: 4
  max_steps: 3
  warmup_steps: 1
  eval_every: 2
  eval_batches: 1
  dtype: float32
  threads: 1
sampling:
  temperature: 0.9
""")
    return p


def test_train_writes_a_crystal_model(cli, tmp_path):
    csv = write_csv(tmp_path / "train.csv")
    out = tmp_path / "model"
    code, stdout, err = cli("train", "crystal", "--recipe", recipe(tmp_path, csv), "-o", out, "-q")
    assert code == 0, err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["modality"] == "crystal" and cfg["transformer"]["vocab_size"] == 371
    assert cfg["transformer"]["pos_emb"] == "learned" and cfg["transformer"]["tie_embeddings"] is True
    assert cfg["transformer"]["max_seq_len"] >= 64 and cfg["sampling"]["temperature"] == 0.9
    card = (out / "README.md").read_text()
    assert "10 CIFs for training" in card and "symprec 0.1" in card
    from argen.modalities.crystal.pipeline import CrystalPipeline

    pipe = CrystalPipeline.from_pretrained(str(out))
    assert pipe.name == "tiny-crystal" and pipe.default_sampling["temperature"] == 0.9


def test_crystal_recipe_needs_crystal_data(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("task: crystal\nname: x\ndata:\n  path: a.txt\nmodel: {}\n")
    with pytest.raises(ArgenError, match="crystal-csv"):
        load_train_recipe(p)
