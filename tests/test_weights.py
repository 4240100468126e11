"""The bundled registry: hashes verified, tampering refused, `argen models` lists it."""

import json
import shutil

import pytest

from argen.checkpoints import resolve as weights
from argen.checkpoints.loader import load_transformer
from argen.errors import ArgenError


def test_every_registered_file_matches_its_sha256():
    reg = weights.load_registry()
    assert reg.models, "the registry lists no models"
    root = weights.bundled_dir()
    for name, entry in reg.models.items():
        if entry.hub is not None:  # public checkpoints: pulled on demand (tests/test_hub_pull.py)
            continue
        assert weights.file_status(root, entry) == "ok", name
        if entry.modality == "video":  # and each loads (video models are not token transformers)
            from argen.modalities.video.dit import load_video_dir

            load_video_dir(root / entry.path)
        else:
            load_transformer(root / entry.path)


def test_a_models_digest_is_its_own_weight_file_not_its_codecs():
    root = weights.bundled_dir()
    for name in ("bouncing-video", "melodies-audio", "shapes-next-scale"):  # each has a codec or tokenizer
        ref = weights.resolve(name)
        assert ref.sha256 == weights.sha256_file(root / name / "model.safetensors"), name


def test_each_modality_default_exists():
    assert weights.default_model("text") == "shakespeare-char"
    assert weights.default_model("video") == "bouncing-video"
    assert weights.default_model("audio") == "melodies-audio"


@pytest.fixture
def weights_copy(tmp_path, monkeypatch):
    dst = tmp_path / "weights"
    shutil.copytree(weights.bundled_dir(), dst)
    monkeypatch.setenv("ARGEN_WEIGHTS_DIR", str(dst))
    return dst


def test_tampered_weight_is_refused(weights_copy, cli, tmp_path):
    f = weights_copy / "shakespeare-char" / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte in a tensor: still loads, so only the hash catches it
    f.write_bytes(bytes(data))
    with pytest.raises(ArgenError, match="does not match its sha256"):
        weights.resolve("shakespeare-char")
    code, out, err = cli("text", "--prompt", "x", "-o", tmp_path / "o.txt")
    assert code == 1 and "tampered" in err and not (tmp_path / "o.txt").exists()
    code, out, _ = cli("models", "--json")
    status = {json.loads(line)["name"]: json.loads(line)["sha256"] for line in out.splitlines()}
    assert status["shakespeare-char"] == "MISMATCH"


def test_truncated_and_missing_files_are_refused(weights_copy):
    f = weights_copy / "shakespeare-char" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(ArgenError, match="sha256"):
        weights.resolve("shakespeare-char")
    f.unlink()
    with pytest.raises(ArgenError, match="missing"):
        weights.resolve("shakespeare-char")


def test_unknown_name_lists_what_exists():
    with pytest.raises(ArgenError) as e:
        weights.resolve("gpt-17")
    assert "shakespeare-char" in e.value.hint


def test_models_table(cli):
    code, out, _ = cli("models")
    assert code == 0
    row = next(line for line in out.splitlines() if line.strip().startswith("shakespeare-char "))
    assert "text" in row and "ok" in row and "M" in row


def test_float16_storage_halves_the_file_and_loads_as_float32(tmp_path):
    import torch
    from conftest import tiny_model
    from safetensors import safe_open

    from argen.checkpoints.argen_format import load_model_dir, save_model_dir

    model = tiny_model(vocab=300, d_model=64)
    save_model_dir(tmp_path / "f32", model, "text")
    save_model_dir(tmp_path / "f16", model, "text", dtype=torch.float16)
    size = {d: (tmp_path / d / "model.safetensors").stat().st_size for d in ("f32", "f16")}
    assert size["f16"] < 0.55 * size["f32"]
    with safe_open(tmp_path / "f16" / "model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    loaded, _ = load_model_dir(tmp_path / "f16")
    ids = torch.randint(0, 300, (2, 16))
    for p in loaded.parameters():
        assert p.dtype == torch.float32
    with torch.no_grad():
        want, got = model(ids), loaded(ids)
    if isinstance(want, tuple):
        want, got = want[0], got[0]
    assert not torch.equal(want, got)  # the weights were rounded ...
    torch.testing.assert_close(got, want, atol=2e-2, rtol=0)  # ... by float16's precision only


def test_public_models_come_from_hub_yaml():
    reg = weights.load_registry()
    assert reg.models["var-d16"].hub.convert == "var" and reg.models["var-d16"].hub.repo_id == "FoundationVision/var"
    assert reg.models["llamagen-gpt-b-256"].hub.options == {"image_size": 256}
    assert all(e.hub is None for n, e in reg.models.items() if n.startswith(("shakespeare", "shapes")))


def test_a_name_in_both_registry_files_is_refused(weights_copy):
    hub = weights_copy / "hub.yaml"
    hub.write_text(hub.read_text() + "  shakespeare-char:\n    modality: text\n    hub:\n      repo_id: a/b\n"
                   "      files:\n        - file: model.safetensors\n")
    with pytest.raises(ArgenError, match="shakespeare-char also in registry.yaml"):
        weights.load_registry()
