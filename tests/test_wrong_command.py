"""A model given to another modality's command (`argen text --model <a Janus-Pro folder>`, a
MusicGen to `argen image`, ...) is one line saying which command runs it, and nothing is
written: every pair of the six commands over the bundled models (by name and by folder), tiny
random Janus-Pro, MusicGen and MeshXL folders in their official layouts, and registered models
whose files are not downloaded (by name and by hub id)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
SUFFIX = {"text": ".txt", "image": ".png", "audio": ".wav", "mesh": ".obj", "video": ".mp4", "crystal": ".cif"}
BUNDLED = {"text": "shakespeare-char", "image": "shapes-next-token", "audio": "melodies-audio",
           "mesh": "shapes3d-mesh", "video": "bouncing-video", "crystal": "crystal-perov5"}


@pytest.fixture(autouse=True)
def empty_caches(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("ARGEN_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> dict[str, Path]:
    """Tiny random checkpoints of the released families, saved as their hub repositories hold them."""
    import musicgen_fixtures as fx

    from tests.janus_tiny import save_tiny_janus
    from tests.test_meshxl import _folder, _opt

    root = tmp_path_factory.mktemp("released")
    save_tiny_janus(root / "janus-pro")
    return {"image": root / "janus-pro", "audio": fx.save(fx.build("mono"), root / "musicgen"),
            "mesh": _folder(root / "mesh-xl", _opt())}


def refused(cli, tmp_path: Path, command: str, model: str | Path, owner: str) -> None:
    out = tmp_path / f"out{SUFFIX[command]}"
    code, stdout, err = cli(command, "--model", model, "-p", "x", "-o", out)
    lines = err.strip().splitlines()
    article = "an" if owner[0] in "aeiou" else "a"
    assert code == 1 and stdout == "" and len(lines) == 2, (command, model, err)
    assert lines[0] == f"Error: {model} is {article} {owner} model: use argen {owner}", (command, err)
    assert f"argen {owner} --model {model}" in lines[1]
    assert not out.exists()


@pytest.mark.parametrize("owner", sorted(BUNDLED))
def test_bundled_models_by_name_and_by_folder(cli, tmp_path, owner):
    for command in sorted(set(BUNDLED) - {owner}):
        refused(cli, tmp_path, command, BUNDLED[owner], owner)
        refused(cli, tmp_path, command, ROOT / "weights" / BUNDLED[owner], owner)


@pytest.mark.parametrize("owner", ["image", "audio", "mesh"])
def test_released_family_folders(cli, tmp_path, released, owner):
    # text's generic path claims any Hugging Face folder: the specific family is asked first
    for command in sorted(set(BUNDLED) - {owner}):
        refused(cli, tmp_path, command, released[owner], owner)


@pytest.mark.parametrize("command, model, owner", [
    ("text", "janus-pro-1b", "image"),
    ("audio", "deepseek-community/Janus-Pro-1B", "image"),
    ("image", "musicgen-small", "audio"),
    ("image", "facebook/musicgen-stereo-melody", "audio"),
    ("text", "meshxl-125m", "mesh"),
    ("text", "CH3COOK/mesh-xl-350m", "mesh"),
    ("mesh", "skyreels-v2-df-1.3b", "video"),
])
def test_registered_models_not_downloaded_name_their_command_first(cli, tmp_path, command, model, owner):
    refused(cli, tmp_path, command, model, owner)


def test_the_api_says_the_same(released):
    import argen
    from argen.errors import ArgenError

    with pytest.raises(ArgenError, match=r"is an image model: use argen image$"):
        argen.load(released["image"], "text", device="cpu")  # a pathlib.Path as well as a str
    with pytest.raises(ArgenError, match=r"musicgen-small is an audio model: use argen audio$"):
        argen.load("musicgen-small", "image", device="cpu")
    # each folder still loads through its own command's modality
    from argen.modalities.loading import modality_of

    assert {m: modality_of(str(p)) for m, p in released.items()} == {"image": "image", "audio": "audio", "mesh": "mesh"}
