"""A registered model name always means the registry's (sha256-checked) model; a local folder
of the same name is used only when given as a path, and recorded as that path. Registry paths
stay inside the weights folder."""

from __future__ import annotations

import pytest

from argen.checkpoints.registry import RegistryEntry, bundled_dir
from argen.checkpoints.resolve import resolve


def test_a_folder_named_like_a_bundled_model_does_not_replace_it(tmp_path, monkeypatch, char_model_dir):
    import shutil

    shutil.copytree(char_model_dir, tmp_path / "shakespeare-char")  # a different model under the registered name
    monkeypatch.chdir(tmp_path)
    ref = resolve("shakespeare-char", "text")
    assert ref.bundled and ref.path.resolve().is_relative_to(bundled_dir().resolve()) and ref.sha256
    local = resolve("./shakespeare-char", "text")
    assert not local.bundled and local.path.resolve() == (tmp_path / "shakespeare-char").resolve()
    assert local.name == "./shakespeare-char"  # recorded as the path, not the registered name
    assert resolve(str(char_model_dir)).name == "tiny-char"  # an unregistered folder keeps its own name


def test_the_cli_records_the_local_folder_as_a_path(cli, tmp_path, monkeypatch, char_model_dir):
    import json
    import shutil

    shutil.copytree(char_model_dir, tmp_path / "shakespeare-char")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("text", "--model", "./shakespeare-char", "-p", "To be", "--max-new-tokens", "3", "--seed", "1",
                       "-o", "out.txt", "-q")
    assert code == 0, err
    meta = json.loads((tmp_path / "out.txt.meta.json").read_text())
    assert meta["model"] == "./shakespeare-char", meta


@pytest.mark.parametrize("path, files", [("../elsewhere", ["../elsewhere/model.safetensors"]),
                                         ("/etc", ["/etc/passwd"]), ("m", ["m/../../x.safetensors"])])
def test_registry_paths_must_stay_inside_the_weights_folder(path, files):
    with pytest.raises(ValueError, match="leaves the weights folder"):
        RegistryEntry(modality="text", path=path, files=[{"file": f, "sha256": "0" * 64} for f in files])
