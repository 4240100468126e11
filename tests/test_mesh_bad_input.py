"""Issue 36's bad requests to the released mesh families that tests/test_mesh_families_cli.py's
table leaves out, each one line through `argen mesh` with nothing written: --max-faces above
x-mesh-xl's context (its 32 text queries take room, so its limit is lower than MeshXL's), an
unknown --category for a folder of fine-tunes and for x-mesh-xl, and --category on a MeshXL given
by a hub id from the Hugging Face cache. (MeshXL base with a prompt, an unknown category and
--max-faces above its context are in that table; LLaMA-Mesh's limit too.) Also the bundled
shapes3d-mesh's --max-faces bound, checked against the grammar itself."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from tests.test_hf_cache import hf_snapshot  # noqa: E402
from tests.test_mesh_families_cli import one_thread, sft_only, xmeshxl  # noqa: E402,F401 - fixtures
from tests.test_meshxl import POSITIONS, _folder, _opt  # noqa: E402
from tests.test_meshxl_text import QUERIES  # noqa: E402

X_LIMIT = (POSITIONS - QUERIES) // 9  # BOS, then 9 tokens a face after the text queries


def one_line(cli, tmp_path, model, *args: str) -> str:
    out = tmp_path / "out"
    code, stdout, err = cli("mesh", "--model", model, *args, "--seed", "0", "-o", out / "m.obj")
    lines = err.strip().splitlines()
    assert code == 2 and stdout == "" and "Traceback" not in err, err
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), err
    assert not out.exists()
    return lines[0]


@pytest.mark.parametrize("faces", [X_LIMIT + 1, 5000])
def test_x_meshxl_max_faces_above_its_context(cli, tmp_path, xmeshxl, faces):  # noqa: F811
    line = one_line(cli, tmp_path, xmeshxl, "-p", "a tall lamp", "--max-faces", str(faces))
    assert line == (f"Error: --max-faces must be in 1..{X_LIMIT} for this model (context {POSITIONS} tokens, "
                    f"9 a face), got {faces}")


def test_unknown_category(cli, tmp_path, sft_only, xmeshxl):  # noqa: F811
    assert one_line(cli, tmp_path, sft_only, "--category", "sofa") == \
        "Error: unknown category 'sofa' (this MeshXL has: chair, lamp)"
    assert one_line(cli, tmp_path, xmeshxl, "-p", "a lamp", "--category", "chair") == \
        "Error: unknown category 'chair' (this MeshXL has: none in this folder)"


def test_by_hub_id_from_the_cache(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("ARGEN_HOME", str(tmp_path / "home"))
    hf_snapshot(tmp_path / "hf", "CH3COOK/mesh-xl-125m", _folder(tmp_path / "files", _opt()))
    model = "CH3COOK/mesh-xl-125m"
    assert one_line(cli, tmp_path, model, "--category", "chair") == \
        "Error: unknown category 'chair' (this MeshXL has: none in this folder)"
    assert one_line(cli, tmp_path, model, "-p", "a chair").startswith("Error: this MeshXL model takes no text prompt")
    limit = (POSITIONS - 1) // 9
    assert one_line(cli, tmp_path, model, "--max-faces", str(limit + 1)).startswith(
        f"Error: --max-faces must be in 1..{limit} for this model")


def test_bundled_mesh_max_faces_above_what_its_context_holds(cli, tmp_path):
    """shapes3d-mesh's 1024 mesh tokens hold 339 faces along one adjacent strip: more is one line."""
    line = one_line(cli, tmp_path, "shapes3d-mesh", "-p", "a tall lamp", "--max-faces", "340")
    assert line == "Error: --max-faces must be in 1..339 for this model (1024 mesh tokens, 3 a face along a strip), got 340"


@pytest.mark.parametrize("adjacent", [True, False])
@pytest.mark.parametrize("budget", [10, 19, 40, 301])
def test_most_faces_is_what_the_grammar_lets_a_sequence_hold(adjacent, budget):
    """Drive the grammar towards as many faces as it allows (the smallest allowed coordinate, else
    SEP, else EOS): it ends with exactly `most_faces` faces within the budget."""
    from argen.modalities.mesh.constraints import RowState, most_faces
    from argen.modalities.mesh.tokenizer import EOS, LEVELS, SEP

    row = RowState(adjacent, 10**6, EOS + 1, budget)
    while not row.done:
        ok = row.allowed()
        coords = ok[:LEVELS].nonzero()[0]
        row.feed(int(coords[0]) if len(coords) else (SEP if ok[SEP] else EOS))
    assert row.faces == most_faces(adjacent, budget) and row.used <= budget
