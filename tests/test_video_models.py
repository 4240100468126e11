"""`argen video` with SkyReels-V2 / Wan2.1 folders end to end: tiny random models in the official
layouts (diffusers / transformers ``save_pretrained``) given to ``--model`` as a folder, as a
Hugging Face cache entry (repository id or registered name), or pulled with `argen weights pull`;
the MP4s open with the frames and size asked for; bad requests are one line and write nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from argen.io.video import read_video_metadata, write_mp4

pytest.importorskip("transformers")
pytest.importorskip("diffusers")

W, H = 48, 32  # 16-pixel multiples: latent 4 x 6, 2 x 3 tokens a frame
SMALL = ("--size", f"{W}x{H}", "--steps", "2", "--device", "cpu")
COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one thread avoids OpenMP spinning on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def df_dir(tmp_path_factory) -> Path:
    from argen.modalities.video.skyreels.tiny import build_tiny

    folder, _ = build_tiny(tmp_path_factory.mktemp("video-models") / "df")
    return folder


def frames_of(path: Path) -> tuple[int, int, int]:
    """(frames, height, width) of an MP4 as PyAV decodes it."""
    import av

    with av.open(str(path)) as src:
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(src.streams.video[0])]
    return len(frames), frames[0].shape[0], frames[0].shape[1]


def test_text_to_video_from_a_diffusers_folder(cli, df_dir, tmp_path):
    out = tmp_path / "out.mp4"
    code, stdout, err = cli("video", "--model", df_dir, "-p", "a red fox runs", "--frames", "7", "--context", "17",
                            "--overlap", "5", "--block-frames", "4", "--seed", "3", *SMALL, "-o", out)
    assert code == 0, err
    assert stdout.strip() == str(out)
    assert "7 frames rounded up to 9" in err  # 4k+1 frames: said, not silently changed
    assert frames_of(out) == (9, H, W)
    meta = read_video_metadata(out)
    assert meta["family"] == "skyreels-v2-df" and meta["seed"] == 3 and meta["frames"] == 9
    assert meta["size"] == f"{W}x{H}" and meta["steps"] == 2 and meta["prompt"] == "a red fox runs"
    # the same request again: refused without --overwrite (file kept); with it, the same bytes (seeded)
    first = out.read_bytes()
    again = ("video", "--model", df_dir, "-p", "a red fox runs", "--frames", "9", "--context", "17", "--overlap", "5",
             "--block-frames", "4", "--seed", "3", *SMALL, "-o", out)
    code, _, err = cli(*again)
    assert code != 0 and "exists" in err and out.read_bytes() == first
    code, _, err = cli(*again, "--overwrite")
    assert code == 0, err
    assert out.read_bytes() == first


def test_extend_a_clip_with_the_causal_cache(cli, df_dir, tmp_path):
    """A clip of another size and frame rate is cropped, resized and resampled; 12 new frames in
    causal blocks of 3 latent frames (12 video frames), finished blocks kept in the KV cache."""
    rng = np.random.default_rng(0)
    clip = write_mp4(tmp_path / "clip.mp4", rng.integers(0, 256, size=(10, 40, 80, 3), dtype=np.uint8), 20)
    out = tmp_path / "ext.mp4"
    code, _, err = cli("video", "--model", df_dir, "--extend", clip, "-p", "the fox", "--frames", "12", "--context", "33",
                       "--overlap", "9", "--block-frames", "12", "--ar-step", "1", "--seed", "0", *SMALL, "-o", out)
    assert code == 0, err
    n_clip = 12  # 10 frames at 20 fps last 0.5 s: 12 frames at the model's 24
    assert frames_of(out) == (n_clip + 12, H, W)
    meta = read_video_metadata(out)
    assert meta["causal_cache"] is True and meta["extend"] == "clip.mp4" and meta["block_frames"] == 12
    only = tmp_path / "new.mp4"
    code, _, err = cli("video", "--model", df_dir, "--extend", clip, "-p", "the fox", "--frames", "12", "--context", "33",
                       "--overlap", "9", "--block-frames", "12", "--only-new", "--no-causal-cache", *SMALL, "-o", only)
    assert code == 0, err
    assert frames_of(only) == (12, H, W)


def test_bad_requests_are_one_line_and_write_nothing(cli, df_dir, tmp_path):
    short = write_mp4(tmp_path / "short.mp4", np.zeros((3, H, W, 3), np.uint8), 24)
    sound = tmp_path / "tone.wav"
    with wave.open(str(sound), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(np.zeros(800, np.int16).tobytes())
    window = ("--context", "17", "--overlap", "5", "--block-frames", "4", *SMALL)
    cases = [
        (("--extend", short, *window), "continues from its last 5"),
        (("--extend", sound, *window), "has no video stream"),
        (("-p", "a cat", *window, "--size", "50x32"), "cannot take 50x32"),
        (("-p", "a cat", "--block-frames", "6", *SMALL), "multiple of 4"),
        (("-p", "a cat", "--temperature", "0.5", *window), "--temperature does not apply"),
        (("-p", "a cat", "--context", "18", *SMALL), "4k+1"),
    ]
    for args, words in cases:
        out = tmp_path / "never.mp4"
        code, _, err = cli("video", "--model", df_dir, *args, "-o", out)
        assert code != 0 and words in err, (args, err)
        assert len([ln for ln in err.splitlines() if ln.startswith("Error")]) == 1, err
        assert not out.exists()


def fake_hf_cache(root: Path, repo_id: str, folder: Path) -> Path:
    """``folder`` laid out as huggingface_hub caches a download: blobs named by their sha256,
    snapshot files symlinked to them, refs/main naming the commit."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / COMMIT
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            sha = hashlib.sha256(p.read_bytes()).hexdigest()
            blob = repo / "blobs" / sha
            blob.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, blob)
            link = snap / p.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snap


def registry_with(tmp_path: Path, name: str, repo_id: str, folder: Path, pinned: bool = False) -> None:
    """A weights registry holding one hub model whose files are ``folder``'s (``pinned``: with
    their sha256)."""
    lines = ["models:", f"  {name}:", "    modality: video", "    hub:", f"      repo_id: {repo_id}", "      files:"]
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            lines.append(f"        - file: {p.relative_to(folder).as_posix()}")
            if pinned:
                lines.append(f"          sha256: {hashlib.sha256(p.read_bytes()).hexdigest()}")
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "registry.yaml").write_text("\n".join(lines) + "\n")


def test_models_in_the_hugging_face_cache_are_used_in_place(cli, df_dir, tmp_path, monkeypatch):
    cache = tmp_path / "hf"
    snap = fake_hf_cache(cache, "tiny-org/tiny-df", df_dir)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("ARGEN_HOME", str(tmp_path / "home"))
    registry_with(tmp_path, "tiny-df", "tiny-org/tiny-df", df_dir, pinned=True)
    monkeypatch.setenv("ARGEN_WEIGHTS_DIR", str(tmp_path / "weights"))
    args = ("-p", "a dog", "--frames", "5", "--context", "17", "--overlap", "5", "--block-frames", "4", *SMALL)
    for model in ("tiny-org/tiny-df", "tiny-df"):  # by repository id, and by registered name
        out = tmp_path / f"{model.replace('/', '_')}.mp4"
        code, _, err = cli("video", "--model", model, *args, "-o", out)
        assert code == 0, err
        assert frames_of(out) == (5, H, W)
        assert read_video_metadata(out)["model"] == model
    assert not (tmp_path / "home" / "models").exists()  # nothing copied into argen's cache
    # a cached file replaced by other bytes: the registered name (its files pinned) refuses the
    # cache's copy and says how to replace it
    text = (snap / "model_index.json").read_text()
    (snap / "model_index.json").unlink()
    (snap / "model_index.json").write_text(text.replace("  ", "   "))
    code, _, err = cli("video", "--model", "tiny-df", *args, "-o", tmp_path / "x.mp4")
    assert code != 0 and "does not match the registry's sha256" in err and "download it again" in err
    assert len(err.strip().splitlines()) == 2 and not (tmp_path / "x.mp4").exists()
    code, _, err = cli("video", "--model", "tiny-org/absent", *args, "-o", tmp_path / "y.mp4")
    assert code != 0 and "hf download tiny-org/absent" in err


def test_pull_a_diffusers_folder_then_generate(cli, df_dir, tmp_path, monkeypatch):
    """`argen weights pull` of a diffusers folder: weights checked against their LFS sha256, small
    files (configs, tokenizer) against their git blob id; then `argen video --model NAME`."""
    from tests.test_hub_pull import REPO, HubServer

    files = {p.relative_to(df_dir).as_posix(): p.read_bytes() for p in sorted(df_dir.rglob("*")) if p.is_file()}
    server = HubServer(files)
    server.etag = lambda data: (hashlib.sha256(data).hexdigest() if data[:1] != b"{"
                                else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("ARGEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    registry_with(tmp_path, "tiny-df", REPO, df_dir)
    monkeypatch.setenv("ARGEN_WEIGHTS_DIR", str(tmp_path / "weights"))
    try:
        code, _, err = cli("weights", "pull", "tiny-df", "--endpoint", server.url)
    finally:
        server.close()
    assert code == 0, err
    recorded = json.loads((tmp_path / "home" / "models" / "tiny-df" / ".sha256.json").read_text())
    assert recorded == {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    out = tmp_path / "pulled.mp4"
    code, _, err = cli("video", "--model", "tiny-df", "-p", "a dog", "--frames", "5", "--context", "17", "--overlap", "5",
                       "--block-frames", "4", *SMALL, "-o", out)
    assert code == 0, err
    assert frames_of(out) == (5, H, W)


def test_registered_video_models(cli):
    from argen.checkpoints.registry import load_registry

    models = load_registry().models
    assert models["skyreels-v2-df-1.3b"].hub.repo_id == "Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers"
    assert models["wan2.1-t2v-1.3b"].hub.repo_id == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    assert models["self-forcing"].hub.convert == "self-forcing"
    for name in ("skyreels-v2-df-1.3b", "wan2.1-t2v-1.3b"):
        files = {f.file for f in models[name].hub.files}
        assert {"model_index.json", "transformer/config.json", "vae/config.json", "text_encoder/config.json",
                "scheduler/scheduler_config.json", "tokenizer/spiece.model"} <= files
    code, out, _ = cli("models", "--json")
    rows = {r["name"]: r for r in map(json.loads, out.splitlines())}
    assert code == 0 and rows["skyreels-v2-df-1.3b"]["family"] == "diffusers"
    assert rows["skyreels-v2-df-1.3b"]["cfg"] == "<=1 off" and rows["wan2.1-t2v-1.3b"]["modality"] == "video"
    code, out, _ = cli("video", "--help")
    assert "14.7 GB" in out and "skyreels-v2-df-1.3b" in out  # which model needs which GPU memory


def test_batch_recipe_with_a_skyreels_folder(cli, df_dir, tmp_path):
    """`argen run`: a job's seeds for one prompt are denoised together; each MP4 is its own seed's."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
jobs:
  - name: df
    modality: video
    model: {df_dir}
    prompts: ["a red fox runs"]
    seeds: [3, 4]
    frames: 5
    steps: 2
    size: {W}x{H}
    context: 17
    overlap: 5
    block_frames: 4
    device: cpu
""")
    out = tmp_path / "out"
    code, _, err = cli("run", recipe, "-o", out, "-q")
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    done = sorted((r for r in rows if r["status"] == "done"), key=lambda r: r["path"])
    assert len(done) == 2
    paths = [out / r["path"] for r in done]
    assert all(frames_of(p) == (5, H, W) for p in paths)
    assert sorted(read_video_metadata(p)["seed"] for p in paths) == [3, 4]
    assert paths[0].read_bytes() != paths[1].read_bytes()
