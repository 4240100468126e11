"""The released MusicGen checkpoints by registry name and hub id, on tiny random weights in the
files each hub repository holds: `argen weights pull musicgen-melody` from a loopback hub serving
a ``MusicgenMelodyForConditionalGeneration`` in two safetensors shards with their index (as
facebook/musicgen-melody holds it), then `argen audio --model musicgen-melody`; `--model
facebook/musicgen-small` from a Hugging Face cache under HF_HOME (the layout huggingface_hub
writes), and one line naming the download when there is no copy; `argen models` lists them all."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import musicgen_fixtures as fx
import pytest
from musicgen_fixtures import one_thread  # noqa: F401 (an autouse fixture)

pytest.importorskip("transformers")

from tests.test_hf_cache import hf_snapshot  # noqa: E402
from tests.test_hub_pull import HubServer  # noqa: E402
from tests.test_musicgen_cli import audio_info  # noqa: E402

RELEASED = {"musicgen-small": "facebook/musicgen-small", "musicgen-medium": "facebook/musicgen-medium",
            "musicgen-large": "facebook/musicgen-large", "musicgen-melody": "facebook/musicgen-melody",
            "musicgen-melody-large": "facebook/musicgen-melody-large",
            "musicgen-stereo-small": "facebook/musicgen-stereo-small",
            "musicgen-stereo-medium": "facebook/musicgen-stereo-medium",
            "musicgen-stereo-large": "facebook/musicgen-stereo-large",
            "musicgen-stereo-melody": "facebook/musicgen-stereo-melody",
            "musicgen-stereo-melody-large": "facebook/musicgen-stereo-melody-large"}


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    """An empty Hugging Face cache (HF_HOME, as most users have it) and argen home."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    monkeypatch.setenv("ARGEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def hub_files(kind: str, folder: Path, shards: int = 1) -> Path:
    """A tiny MusicGen saved as the hub repository holds it: ``save_pretrained``'s files, the
    weights split into ``shards`` files with their index when the repository shards them, and
    the T5 tokenizer files (the tokenizer.json is the fixture's; spiece.model, which only the slow
    tokenizer reads, is a stand-in)."""
    from safetensors.torch import load_file, save_file

    fx.save(fx.build(kind), folder)
    (folder / "spiece.model").write_bytes(b"sentencepiece stand-in: the fast tokenizer reads tokenizer.json")
    if not (folder / "special_tokens_map.json").is_file():  # newer transformers no longer write it
        (folder / "special_tokens_map.json").write_text(json.dumps({"eos_token": "</s>", "pad_token": "<pad>",
                                                                   "unk_token": "<unk>"}))
    if shards > 1:
        state = load_file(str(folder / "model.safetensors"))
        (folder / "model.safetensors").unlink()
        keys, weight_map = sorted(state), {}
        for i in range(shards):
            name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = keys[i::shards]
            save_file({k: state[k] for k in part}, str(folder / name), metadata={"format": "pt"})
            weight_map.update({k: name for k in part})
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def test_models_lists_every_released_musicgen(cli):
    from argen.checkpoints.registry import load_registry

    code, out, err = cli("models", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in map(json.loads, out.splitlines())}
    models = load_registry().models
    for name, repo in RELEASED.items():
        r = rows[name]
        assert (r["modality"], r["hub_id"], r["family"], r["sha256"]) == ("audio", repo, "musicgen", "not pulled")
        files = [f.file for f in models[name].hub.files]
        assert models[name].hub.convert is None and all(f.sha256 is None for f in models[name].hub.files)
        assert {"config.json", "tokenizer.json", "spiece.model"} <= set(files)
        weights = [f for f in files if f.endswith((".safetensors", ".bin"))]
        index = "model.safetensors.index.json" in files
        assert weights and (index == (len(weights) > 1))  # a sharded repository lists its index too
    shards = [f.file for f in models["musicgen-melody-large"].hub.files if f.file.endswith(".safetensors")]
    assert shards == [f"model-{i:05d}-of-00003.safetensors" for i in (1, 2, 3)]


def test_pull_musicgen_melody_then_generate(cli, tmp_path):
    from argen.checkpoints.resolve import load_registry

    files = hub_files("melody", tmp_path / "files", shards=2)
    served = {p.name: p.read_bytes() for p in sorted(files.iterdir()) if p.name != "generation_config.json"}
    assert set(served) == {f.file for f in load_registry().models["musicgen-melody"].hub.files}
    hub = HubServer(served, repo="facebook/musicgen-melody")
    lfs = {d for n, d in served.items() if n.endswith((".safetensors", ".model"))}  # LFS on the hub: sha256 ETags
    hub.etag = lambda data: (hashlib.sha256(data).hexdigest() if data in lfs
                             else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())
    try:
        code, _, err = cli("audio", "--model", "musicgen-melody", "-p", "calm strings", "-o", tmp_path / "a.wav")
        assert code == 1 and "argen weights pull musicgen-melody" in err and not (tmp_path / "a.wav").exists()
        code, out, err = cli("weights", "pull", "musicgen-melody", "--endpoint", hub.url)
        assert code == 0, err
        assert "git-sha1 ok" in err and "sha256 ok" in err
        pulled = Path(out.strip())
        assert json.loads((pulled / ".sha256.json").read_text()) == {
            n: hashlib.sha256(d).hexdigest() for n, d in served.items()}
    finally:
        hub.close()
    code, out, err = cli("audio", "--model", "musicgen-melody", "-p", "calm strings", "--seconds", "0.4", "--seed", "3",
                         "-o", tmp_path / "m.wav", "--json", "-q")
    assert code == 0, err
    assert audio_info(tmp_path / "m.wav") == (fx.RATE, 1, int(0.4 * fx.RATE))
    meta = json.loads(cli("info", tmp_path / "m.wav", "--json")[1])
    assert meta["model"] == "musicgen-melody" and meta["seed"] == 3
    # the pulled shards give the same audio as the folder transformers saved
    code, _, err = cli("audio", "--model", files, "-p", "calm strings", "--seconds", "0.4", "--seed", "3",
                       "-o", tmp_path / "f.wav", "-q")
    assert code == 0, err
    from argen.io.audio import read_audio

    assert (read_audio(tmp_path / "m.wav", fx.RATE, 1) == read_audio(tmp_path / "f.wav", fx.RATE, 1)).all()


def test_a_hub_id_uses_the_hugging_face_cache(cli, tmp_path):
    files = hub_files("mono", tmp_path / "files")
    snap = hf_snapshot(tmp_path / "hfhome" / "hub", "facebook/musicgen-small", files)  # what `hf download` leaves
    out = tmp_path / "beat.wav"
    code, stdout, err = cli("audio", "--model", "facebook/musicgen-small", "-p", "lo-fi beat with piano",
                            "--seconds", "0.4", "--seed", "1", "-o", out, "-q")
    assert code == 0, err
    assert stdout.strip() == str(out)
    assert audio_info(out) == (fx.RATE, 1, int(0.4 * fx.RATE))
    meta = json.loads(cli("info", out, "--json")[1])
    assert meta["model"] == "facebook/musicgen-small"
    assert not (tmp_path / "home" / "models").exists()  # read in place: nothing copied into argen's home
    # the sha256 recorded is the one the cache names the weights' blob by
    assert meta["model_sha256"] == (snap / "model.safetensors").resolve().name == hashlib.sha256(
        (files / "model.safetensors").read_bytes()).hexdigest()
    # the registry name reads the same snapshot (nothing pulled): the same seed gives the same samples
    code, _, err = cli("audio", "--model", "musicgen-small", "-p", "lo-fi beat with piano", "--seconds", "0.4",
                       "--seed", "1", "-o", tmp_path / "again.wav", "-q")
    assert code == 0, err
    from argen.io.audio import read_audio

    assert (read_audio(out, fx.RATE, 1) == read_audio(tmp_path / "again.wav", fx.RATE, 1)).all()


@pytest.mark.parametrize("model, hint", [
    ("facebook/musicgen-small", "argen weights pull musicgen-small"),
    ("facebook/musicgen-stereo-melody", "argen weights pull musicgen-stereo-melody"),
    ("musicgen-melody", "argen weights pull musicgen-melody"),
])
def test_offline_with_no_copy_is_one_line_naming_the_download(cli, tmp_path, model, hint):
    out = tmp_path / "a.wav"
    code, stdout, err = cli("audio", "--model", model, "-p", "lo-fi beat", "-o", out)
    lines = err.strip().splitlines()
    assert code == 1 and stdout == "" and len(lines) == 2 and not out.exists()
    assert lines[0].startswith(f"Error: model {model!r} is not downloaded") and hint in lines[1]
