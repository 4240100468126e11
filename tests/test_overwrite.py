"""No existing file is lost by accident: every generating command refuses an existing output (its
sidecar and preview too) before any work unless --overwrite; errors name the user's path, never
a temporary file; an interrupted command keeps the batches it finished."""

from __future__ import annotations

import os

import pytest

from argen.cli.app import main
from argen.modalities.base import Pipeline
from argen.modalities.registry import MODALITIES

FAST = {
    "text": ["-p", "ROMEO:", "--max-new-tokens", "8"],
    "image": ["-p", "a red circle in the top left"],
    "video": ["-p", "a red circle", "--frames", "2", "--steps", "1"],
    "audio": ["-p", "sine C4 at 120 bpm", "--seconds", "0.2"],
    "mesh": ["-p", "a cube", "--max-faces", "12"],
    "crystal": ["--composition", "SrTiO3", "--keep-invalid", "--max-attempts", "1"],
}


@pytest.fixture
def no_generation(monkeypatch):
    """Generating at all is a test failure: refusals must come before any work."""
    def boom(*args, **kwargs):
        raise AssertionError("generation started")

    monkeypatch.setattr(Pipeline, "generate", boom)
    monkeypatch.setattr("argen.modalities.loading.load", boom)


def run(capsys, *args) -> tuple[int, list[str]]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("modality", list(MODALITIES))
@pytest.mark.parametrize("suffix", ["main", "preview"])
def test_an_existing_output_is_refused_before_any_work(modality, suffix, tmp_path, capsys, no_generation):
    target = tmp_path / f"out{MODALITIES[modality].suffixes[0]}"
    args = [modality, *FAST[modality], "--seed", "1", "-o", target]
    if suffix == "preview":
        if modality not in ("audio", "mesh", "crystal"):
            pytest.skip("no --preview")
        target = tmp_path / "p.png"
        args += ["--preview", target]
    target.write_bytes(b"precious")
    code, err = run(capsys, *args)
    assert code == 2 and err[0] == f"Error: {target} exists; argen does not replace files unless told to", err
    assert target.read_bytes() == b"precious" and sorted(os.listdir(tmp_path)) == [target.name]


@pytest.mark.parametrize("modality", ["text", "mesh"])
def test_an_existing_sidecar_is_refused_too(modality, tmp_path, capsys, no_generation):
    out = tmp_path / ("out.txt" if modality == "text" else "out.stl")
    side = tmp_path / f"{out.name}.meta.json"
    side.write_text("{}")
    code, err = run(capsys, modality, *FAST[modality], "-o", out)
    assert code == 2 and err[0] == f"Error: {side} exists; argen does not replace files unless told to", err
    assert side.read_text() == "{}" and not out.exists()


def test_a_folder_in_place_of_the_sidecar_is_named_and_nothing_is_written(tmp_path, capsys, no_generation):
    (tmp_path / "out.txt.meta.json").mkdir()
    code, err = run(capsys, "text", *FAST["text"], "-o", tmp_path / "out.txt")
    assert code == 2 and err[0].startswith(f"Error: {tmp_path / 'out.txt.meta.json'} is a folder"), err
    assert sorted(os.listdir(tmp_path)) == ["out.txt.meta.json"]


def test_a_file_in_place_of_the_output_folder_is_refused(tmp_path, capsys, no_generation):
    (tmp_path / "d").write_text("a file")
    code, err = run(capsys, "image", *FAST["image"], "-o", tmp_path / "d" / "x.png")
    assert code == 2 and "is not a writable folder" in err[0] and str(tmp_path / "d" / "x.png") in err[0], err


def test_overwrite_replaces(tmp_path, capsys):
    target = tmp_path / "out.txt"
    target.write_text("old")
    (tmp_path / "out.txt.meta.json").write_text("{}")
    code, _ = run(capsys, "text", *FAST["text"], "--seed", "1", "-o", target, "--overwrite", "-q")
    assert code == 0 and target.read_text() != "old"
    assert '"seed": 1' in (tmp_path / "out.txt.meta.json").read_text()


def test_text_writes_the_text_before_its_sidecar_and_a_failure_leaves_neither(tmp_path, monkeypatch):
    from argen.io import atomic
    from argen.io.text import write_text

    real = atomic.os.replace
    calls = []

    def replace(src, dst):
        calls.append(str(dst))
        if str(dst).endswith(".meta.json"):
            raise IsADirectoryError(21, "Is a directory", str(src))
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    from argen.errors import ArgenError

    with pytest.raises(ArgenError) as e:
        write_text(tmp_path / "t.txt", "hello", {"seed": 1})
    assert str(tmp_path / "t.txt.meta.json") in e.value.message and ".part" not in e.value.message
    assert os.listdir(tmp_path) == []  # no orphan: the text was taken back


def test_a_failed_rename_names_the_users_path_not_the_temporary_file(tmp_path, monkeypatch):
    from argen.errors import ArgenError
    from argen.io import atomic

    def replace(src, dst):
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(ArgenError) as e:
        atomic.write_text_atomic(tmp_path / "a.txt", "x")
    assert e.value.message == f"cannot write {tmp_path / 'a.txt'}: Permission denied" and not os.listdir(tmp_path)


def test_a_temporary_file_that_cannot_be_made_names_the_users_path(tmp_path, monkeypatch):
    from argen.errors import ArgenError
    from argen.io import atomic

    def mkstemp(**kw):
        raise PermissionError(13, "Permission denied", os.path.join(kw["dir"], kw["prefix"] + "xyz" + kw["suffix"]))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    with pytest.raises(ArgenError) as e:
        atomic.write_text_atomic(tmp_path / "a.txt", "x")
    assert e.value.message == f"cannot write {tmp_path / 'a.txt'}: Permission denied"


def test_crystal_default_names_are_unique_per_seed(tmp_path, capsys, monkeypatch):
    from argen.cli.generate import OutputPaths

    paths = OutputPaths(MODALITIES["crystal"].output, "crystal", 4)
    names = {paths(i, 10 + i, "SrTiO3") for i in range(4)}
    assert names == {paths.root / f"SrTiO3-{10 + i}.cif" for i in range(4)}
    # a composition cannot climb out of the folder through its default name
    monkeypatch.chdir(tmp_path)
    code, err = run(capsys, "crystal", "--composition", "../SrTiO3", "--seed", "1")
    assert code == 2 and "composition" in err[0].lower(), err
    assert not list(tmp_path.parent.glob("SrTiO3-*.cif"))


def test_an_interrupted_command_keeps_the_batches_it_finished(tmp_path, capsys, monkeypatch, image_model_dirs):
    from argen.modalities.image.pipeline import ImagePipeline

    real, calls = ImagePipeline.generate_batch, []

    def batch(self, spec, rows, *args, **kwargs):
        calls.append(len(rows))
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(self, spec, rows, *args, **kwargs)

    monkeypatch.setattr(ImagePipeline, "generate_batch", batch)
    code, err = run(capsys, "image", "--model", image_model_dirs["next-token"], *FAST["image"], "-n", "8",
                    "--batch-size", "2", "--seed", "0", "-o", tmp_path / "img-{i}.png", "-q")
    assert code == 130 and err[0] == "Error: interrupted", err
    assert calls == [2, 2, 2, 2]
    assert sorted(os.listdir(tmp_path)) == [f"img-{i}.png" for i in range(6)]
