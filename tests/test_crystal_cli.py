"""`argen crystal` and `argen eval crystal`: outputs, retries, metadata and errors, on tiny models."""

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("pymatgen")

from pymatgen.core import Lattice, Structure  # noqa: E402

from argen.checkpoints.argen_format import save_model_dir  # noqa: E402
from argen.engine.config import TransformerConfig  # noqa: E402
from argen.engine.transformer import Transformer  # noqa: E402
from argen.io.cif import read_cif_body, read_cif_metadata  # noqa: E402
from argen.lab.tasks.crystal import GPT2_STYLE  # noqa: E402
from argen.modalities.crystal.cif_text import structure_to_text  # noqa: E402
from argen.modalities.crystal.pipeline import CrystalPipeline  # noqa: E402

BUNDLED = Path(__file__).resolve().parents[1] / "weights" / "crystal-perov5"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=371, n_layer=1, d_model=32, n_head=2, max_seq_len=96, **GPT2_STYLE))
    out = tmp_path_factory.mktemp("crystal") / "tiny-crystal"
    save_model_dir(out, model, "crystal", {"name": "tiny-crystal", "sampling": {"temperature": 1.0, "top_k": 20}})
    return out


@pytest.fixture(scope="module")
def good_text() -> str:
    s = Structure(Lattice.cubic(4.0), ["Ba", "Ti", "O", "O", "O"],
                  [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    return structure_to_text(s)


@pytest.fixture
def scripted(monkeypatch, good_text):
    """The sampler replaced by a script: seeds below 100 + 2 give garbage, others a valid BaTiO3."""
    calls = []

    def fake(self, prompt, seeds, sampling, *args):
        calls.append(list(seeds))
        return [("data_Ba1Ti1O3\nloop_\nPm\n\n" if s < 102 else good_text) for s in seeds]

    monkeypatch.setattr(CrystalPipeline, "sample_texts", fake)
    return calls


def test_invalid_samples_are_drawn_again_and_written_with_metadata(cli, model_dir, tmp_path, scripted):
    code, out, err = cli("crystal", "--model", model_dir, "--composition", "BaTiO3", "-n", "2", "--seed", "100",
                         "--max-attempts", "3", "-o", f"{tmp_path}/out/")
    assert code == 0, err
    # attempt 1 draws seeds 100, 101 (garbage); attempt 2 draws 102, 103 (valid)
    assert scripted == [[100, 101], [102, 103]]
    paths = out.split()
    # a folder takes <composition>-<requested seed>.cif; the record names the seed that made it
    assert paths == [str(tmp_path / "out" / "BaTiO3-100.cif"), str(tmp_path / "out" / "BaTiO3-101.cif")]
    meta = read_cif_metadata(paths[0])
    assert meta["seed"] == 102 and meta["attempts"] == 2 and meta["model"] == "tiny-crystal"
    assert meta["prompt"] == "data_Ba1Ti1O3\n" and meta["checks"]["valid"] is True
    body = read_cif_body(paths[0])
    assert body.startswith("data_Ba1Ti1O3\n_symmetry_space_group_name_H-M Pm-3m")
    assert body.count("\n48 '") == 1  # Pm-3m's 48 operators restored
    code, out, _ = cli("info", paths[0])
    assert code == 0 and "tiny-crystal" in out and "Ba1Ti1O3" in out


def test_keep_invalid_writes_a_warning_and_no_valid_sample_is_an_error(cli, model_dir, tmp_path):
    code, out, err = cli("crystal", "--model", model_dir, "--composition", "SrTiO3", "--max-new-tokens", "90", "--seed", "0",
                         "--max-attempts", "2",
                         "-o", tmp_path / "a.cif")
    assert code == 1 and "no valid structure" in err and not (tmp_path / "a.cif").exists()
    code, out, err = cli("crystal", "--model", model_dir, "--composition", "SrTiO3", "--max-new-tokens", "90", "--seed", "0",
                         "--max-attempts", "2",
                         "--keep-invalid", "-o", tmp_path / "a.cif", "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["valid"] is False and rec["attempts"] == 2 and rec["seed"] == 1  # attempt 2 of sample 0: seed 0 + 1
    text = (tmp_path / "a.cif").read_text()
    assert "# WARNING: failed checks:" in text and read_cif_metadata(tmp_path / "a.cif")["checks"]["valid"] is False
    assert "warning: 1 of 1 structures failed" in err


def test_same_seed_same_file(cli, model_dir, tmp_path):
    for name in ("a", "b"):
        assert cli("crystal", "--model", model_dir, "--composition", "BaTiO3", "--max-new-tokens", "90", "--seed", "5",
                   "--keep-invalid", "--max-attempts", "1", "-q", "-o", tmp_path / f"{name}.cif")[0] == 0
    a, b = (read_cif_body(tmp_path / f"{n}.cif") for n in "ab")
    assert a == b and a.startswith("data_Ba1Ti1O3\n")


@pytest.mark.parametrize("args,code,needle", [
    (["--composition", "Xx2O"], 2, "unknown element 'Xx'"),
    (["--composition", "FrCl"], 2, "element 'Fr' is outside CrystaLLM's vocabulary"),
    (["--composition", "BaTiO3", "--spacegroup", "Fm-3m"], 2, "space group Fm-3m does not fit Ba1Ti1O3"),
    (["--composition", "BaTiO3", "--spacegroup", "P2_1/c"], 2, "its sites hold 2, 4 atoms, and 1 Ba is no sum"),
    (["--composition", "BaTiO3", "--spacegroup", "Fm-3m", "-z", "0"], 2, "--formula-units 0: input should be greater than or equal to 1"),
    (["--composition", ""], 2, "give a composition"),
    (["--composition", "BaTiO3", "--spacegroup", "Pm-4q"], 2, "unknown space group 'Pm-4q'"),
    (["--composition", "BaTiO3", "--spacegroup", "pm-3m"], 2, "did you mean Pm-3m"),
    (["--composition", "Ba(TiO3"], 2, "cannot read composition"),
    (["--composition", "BaTiO3", "--formula-units", "0"], 2, "--formula-units 0: input should be greater than or equal to 1"),
    (["--composition", "BaTiO3", "-n", "0"], 2, "--num 0: input should be greater than or equal to 1"),
    (["--composition", "BaTiO3", "-o", "x.png"], 2, "crystal outputs are .cif files"),
])
def test_bad_input_is_one_line_error(cli, model_dir, tmp_path, args, code, needle):
    out_dir = tmp_path / "o"
    got, out, err = cli("crystal", "--model", model_dir, *args, *([] if "-o" in args else ["-o", f"{out_dir}/"]))
    assert got == code and needle in err and "Traceback" not in err and out == ""
    assert len(err.strip().splitlines()) <= 2 and not out_dir.exists()  # one line (and a hint), nothing written


def test_a_fitting_space_group_passes_and_formula_units_make_one_fit():
    from pymatgen.core import Composition

    from argen.modalities.crystal.crystallm.spacegroup_fit import check_fit, multiplicities

    assert multiplicities("Pm-3m") == (1, 3, 6, 8, 12, 24, 48)  # International Tables, vol. A
    assert multiplicities("Fd-3m") == (8, 16, 32, 48, 96, 192)
    assert multiplicities("R-3m") == (3, 6, 9, 18, 36)  # hexagonal setting, as CIFs write it
    check_fit(Composition("BaTiO3"), "Pm-3m")
    check_fit(Composition("Ba4Ti4O12"), "Fm-3m")  # --formula-units 4, as the hint says


def test_checkpoint_needing_unpickling_is_refused_by_the_cli(cli, tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"model": {}, "model_args": {}, "x": Evil()}, tmp_path / "ckpt.pt")
    code, out, err = cli("crystal", "--model", tmp_path / "ckpt.pt", "--composition", "BaTiO3")
    assert code == 1 and "refused" in err and "pickled code" in err and "this must never run" not in out


def test_a_text_model_is_not_a_crystal_model(cli, char_model_dir):
    code, _, err = cli("crystal", "--model", char_model_dir, "--composition", "BaTiO3")
    assert code == 1 and err.startswith(f"Error: {char_model_dir} is a text model: use argen text")


def test_preview_png(cli, model_dir, tmp_path, scripted):
    code, _, err = cli("crystal", "--model", model_dir, "--composition", "BaTiO3", "--seed", "200", "-o", tmp_path / "x.cif",
                       "--preview", tmp_path / "x.png")
    assert code == 0, err
    assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_crystal_counts_matches(cli, model_dir, tmp_path, monkeypatch):
    """With a sampler that returns each test structure itself, validity and match rates are exact."""
    from argen.modalities.crystal.cif_text import cif_to_text

    rows = [Structure(Lattice.cubic(a), ["Ba", "Ti", "O", "O", "O"],
                      [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]) for a in (3.9, 4.1)]
    csv = tmp_path / "test.csv"
    csv.write_text("material_id,cif,formula\n" + "".join(f'{i},"{s.to(fmt="cif")}",BaTiO3\n' for i, s in enumerate(rows)))
    truth = [cif_to_text(s.to(fmt="cif")) for s in rows]
    # Ba and Ti swapped: O then sits next to Ba, a different structure (StructureMatcher scales volumes)
    far = structure_to_text(Structure(Lattice.cubic(4.0), ["Ti", "Ba", "O", "O", "O"], rows[0].frac_coords))

    def fake(self, prompts, seeds, sampling, *args, **kwargs):  # composition k: a far-off cell first, then the truth
        assert all(p == "data_Ba1Ti1O3\n" for p in prompts)  # CrystaLLM's benchmark prompt
        return [far if s % 3 == 0 else truth[s // 3] for s in seeds]

    monkeypatch.setattr(CrystalPipeline, "sample_many", fake)
    code, out, err = cli("eval", "crystal", "--model", model_dir, "--split", csv, "--n", "3", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["compositions"] == 2 and r["samples"] == 6
    assert r["match_1"] == 0.0 and r["match_n"] == 1.0 and r["rmse_n"] < 1e-3
    assert r["validity_of_true_structures"] == 1.0 and r["true_comp_valid"] == 1.0 and r["struct_valid"] == 1.0
    assert r["comp_valid"] == 1.0 and r["unfinished"] == 0


@pytest.mark.skipif(not (BUNDLED / "model.safetensors").is_file(), reason="bundled crystal model not built yet")
def test_bundled_model_writes_a_valid_cif(cli, tmp_path):
    code, out, err = cli("crystal", "--model", BUNDLED, "--composition", "BaTiO3", "--seed", "0", "--max-attempts", "5",
                         "-o", tmp_path / "b.cif")
    assert code == 0, err
    meta = read_cif_metadata(out.strip())
    assert meta["checks"]["valid"] and meta["model"] == "crystal-perov5"
    code, out, _ = cli("info", tmp_path / "b.cif")
    assert code == 0 and "crystal-perov5" in out
