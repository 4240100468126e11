"""Hostile or careless input files end in one clean `Error:` line and a hint (issue 39): a
20000x20000 PNG wherever argen reads an image, a hub endpoint that is not a URL, data files that
are not UTF-8, a folder where a file is expected, and a file that is no checkpoint at all."""

from __future__ import annotations

import json
import struct
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image


def one_line(code: int, err: str) -> str:
    """The error's first line, after checking that the command failed with exactly Error + Hint."""
    lines = err.strip().splitlines()
    assert code in (1, 2) and len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), err
    assert "internal error" not in err, err
    return lines[0]


def huge_png(path, width: int, height: int, meta: dict | None = None):
    """A PNG header for a ``width`` x ``height`` picture with almost no pixel data: what a
    decompression bomb looks like to a reader (a few hundred bytes that claim gigabytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    if meta is not None:
        body += chunk(b"iTXt", b"argen\0\0\0\0\0" + json.dumps(meta).encode())
    body += chunk(b"IDAT", zlib.compress(b"\0" * (1 + 3 * width))) + chunk(b"IEND", b"")
    path.write_bytes(body)
    return path


# --- images -------------------------------------------------------------------------------------

@pytest.mark.parametrize("side", [10_000, 20_000])  # Pillow warns above 89M pixels, raises above 179M
def test_info_on_a_huge_png_prints_its_metadata_without_decoding_it(cli, tmp_path, side):
    path = huge_png(tmp_path / "big.png", side, side, {"generator": "argen", "seed": 5})
    code, out, err = cli("info", path, "--json")
    assert code == 0 and json.loads(out)["seed"] == 5 and err == "", err


def test_info_on_a_huge_png_without_metadata_is_one_line_and_quick(cli, tmp_path):
    path = huge_png(tmp_path / "big.png", 20_000, 20_000)
    t0 = time.time()
    code, _, err = cli("info", path)
    assert "no argen metadata" in one_line(code, err) and time.time() - t0 < 5  # never decodes 1.2 GB of pixels


@pytest.mark.parametrize("which", ["--inpaint", "--mask"])
@pytest.mark.parametrize("side", [10_000, 20_000])
def test_a_huge_inpaint_image_or_mask_is_refused_in_one_line(cli, tmp_path, image_model_dirs, which, side):
    Image.new("RGB", (64, 64)).save(tmp_path / "small.png")
    huge_png(tmp_path / "big.png", side, side)
    files = {"--inpaint": tmp_path / "small.png", "--mask": tmp_path / "small.png", which: tmp_path / "big.png"}
    code, _, err = cli("image", "--model", image_model_dirs["next-scale"], "-p", "a red circle",
                       "--inpaint", files["--inpaint"], "--mask", files["--mask"], "-o", tmp_path / "o.png")
    assert f"{side}x{side} pixels" in one_line(code, err) and not (tmp_path / "o.png").exists()


def test_a_folder_given_as_an_image_says_it_is_a_folder(cli, tmp_path, image_model_dirs):
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "small.png")
    code, _, err = cli("image", "--model", image_model_dirs["next-scale"], "-p", "a red circle",
                       "--inpaint", tmp_path / "pics", "--mask", tmp_path / "small.png", "-o", tmp_path / "o.png")
    line = one_line(code, err)
    assert "is a folder" in line and "not found" not in line


# --- hub endpoint -------------------------------------------------------------------------------

@pytest.fixture
def hub_entry(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "registry.yaml").write_text("models:\n  tiny-hub:\n    modality: text\n    hub:\n"
                                           "      repo_id: argen-test/tiny\n      files:\n        - file: config.json\n")
    monkeypatch.setenv("ARGEN_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("ARGEN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    return tmp_path / "home"


@pytest.mark.parametrize("endpoint", ["not a url", "localhost:8080", "ftp://example.org", "http://", "http://[::1"])
def test_an_endpoint_that_is_not_a_url_is_one_line(cli, hub_entry, endpoint):
    code, _, err = cli("weights", "pull", "tiny-hub", "--endpoint", endpoint)
    assert "--endpoint" in one_line(code, err) and "is not an http(s) URL" in err
    assert not (hub_entry / "models").exists()  # nothing written


def test_an_hf_endpoint_that_is_not_a_url_is_named(cli, hub_entry, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "huggingface.co")
    code, _, err = cli("weights", "pull", "tiny-hub")
    assert "HF_ENDPOINT" in one_line(code, err) and "'huggingface.co' is not an http(s) URL" in err


# --- files that are not UTF-8 -------------------------------------------------------------------

LATIN1 = "Où sont les neiges d'antan ?\n".encode("latin-1")


def test_a_prompt_file_that_is_not_utf8_is_one_line(cli, tmp_path, char_model_dir):
    (tmp_path / "p.txt").write_bytes(LATIN1)
    code, _, err = cli("text", "--model", char_model_dir, "--prompt-file", tmp_path / "p.txt", "-o", tmp_path / "o.txt")
    assert "is not UTF-8 text" in one_line(code, err) and not (tmp_path / "o.txt").exists()


def test_a_recipe_prompt_file_that_is_not_utf8_is_one_line(cli, tmp_path, char_model_dir):
    (tmp_path / "p.txt").write_bytes(LATIN1)
    (tmp_path / "r.yaml").write_text(f"jobs:\n  - name: a\n    modality: text\n    model: {char_model_dir}\n    prompts: p.txt\n")
    code, _, err = cli("run", tmp_path / "r.yaml", "-o", tmp_path / "out")
    assert "is not UTF-8 text" in one_line(code, err)


def test_eval_data_that_is_not_utf8_is_one_line(cli, tmp_path, char_model_dir):
    (tmp_path / "corpus.txt").write_bytes(LATIN1 * 50)
    code, _, err = cli("eval", "text", "--model", char_model_dir, "--data", tmp_path / "corpus.txt")
    assert "is not UTF-8 text (byte 0xf9 at offset 1)" in one_line(code, err)


def test_train_data_that_is_not_utf8_is_one_line(cli, tmp_path):
    from tests.test_train import write_recipe

    (tmp_path / "corpus.txt").write_bytes(LATIN1 * 50)
    recipe = write_recipe(tmp_path, tmp_path / "corpus.txt", max_steps=1)
    code, _, err = cli("train", "text", "--recipe", recipe, "-o", tmp_path / "m", "-q")
    assert "is not UTF-8 text" in one_line(code, err) and not (tmp_path / "m").exists()


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json"])
def test_model_files_that_are_not_utf8_are_one_line(cli, tmp_path, char_model_dir, name):
    import shutil

    shutil.copytree(char_model_dir, tmp_path / "m")
    (tmp_path / "m" / name).write_bytes(b'{"x": "' + "é".encode("latin-1") + b'"}')
    code, _, err = cli("text", "--model", tmp_path / "m", "-p", "A", "--max-new-tokens", "2", "-o", tmp_path / "o.txt")
    line = one_line(code, err)
    assert name in line and "is not UTF-8 text" in line


# --- a folder where a file is expected ----------------------------------------------------------

def test_eval_data_that_is_a_folder_says_so(cli, tmp_path, char_model_dir):
    code, _, err = cli("eval", "text", "--model", char_model_dir, "--data", tmp_path)
    line = one_line(code, err)
    assert "is a folder" in line and "not found" not in line


@pytest.mark.parametrize("name, wrong", [("config.json", "has no config.json"), ("model.safetensors", "not found")])
def test_a_model_file_that_is_a_folder_says_so(cli, tmp_path, char_model_dir, name, wrong):
    import shutil

    shutil.copytree(char_model_dir, tmp_path / "m")
    (tmp_path / "m" / name).unlink()
    (tmp_path / "m" / name).mkdir()
    code, _, err = cli("text", "--model", tmp_path / "m", "-p", "A", "--max-new-tokens", "2", "-o", tmp_path / "o.txt")
    line = one_line(code, err)
    assert f"{name} is a folder" in line and wrong not in line


def test_a_checkpoint_to_convert_that_is_a_folder_says_so(cli, tmp_path):
    (tmp_path / "vae.pth").mkdir()
    code, _, err = cli("weights", "convert", tmp_path / "vae.pth", tmp_path / "vae.pth", "--family", "var",
                       "-o", tmp_path / "out")
    line = one_line(code, err)
    assert "is a folder" in line and "does not exist" not in line


# --- files that are no checkpoint at all --------------------------------------------------------

JUNK = {"text": b"hello, I am a text file\n" * 20, "random": np.random.default_rng(0).bytes(4096), "empty": b""}


@pytest.mark.parametrize("kind", sorted(JUNK))
@pytest.mark.parametrize("suffix", [".pt", ".ckpt"])
def test_a_file_that_is_no_checkpoint_is_not_blamed_on_pickled_code(cli, tmp_path, kind, suffix):
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(JUNK[kind])
    code, _, err = cli("crystal", "--model", path, "--composition", "BaTiO3", "-o", tmp_path / "o.cif")
    line = one_line(code, err)
    assert "is not a PyTorch checkpoint" in line and "pickled code" not in line


@pytest.mark.parametrize("kind", sorted(JUNK))
@pytest.mark.parametrize("family, suffix", [("llamagen", ".bin"), ("var", ".pth")])
def test_a_file_to_convert_that_is_no_checkpoint_is_not_blamed_on_pickled_code(cli, tmp_path, kind, family, suffix):
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(JUNK[kind])
    code, _, err = cli("weights", "convert", path, path, "--family", family, "-o", tmp_path / "out")
    line = one_line(code, err)
    assert "is not a PyTorch checkpoint" in line and "pickled code" not in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", sorted(JUNK))
def test_a_safetensors_file_that_is_junk_is_one_line(cli, tmp_path, char_model_dir, kind):
    import shutil

    shutil.copytree(char_model_dir, tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(JUNK[kind])
    code, _, err = cli("text", "--model", tmp_path / "m", "-p", "A", "--max-new-tokens", "2", "-o", tmp_path / "o.txt")
    assert "is not a readable safetensors file" in one_line(code, err)


def test_a_pickle_that_would_run_code_is_named_with_torchs_reason_uncut(cli, tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"model": {}, "x": Evil()}, tmp_path / "evil.pt")
    code, out, err = cli("crystal", "--model", tmp_path / "evil.pt", "--composition", "BaTiO3")
    line = one_line(code, err)
    assert "pickled code" in line and "this must never run" not in out
    # torch's reason (the global it refused), not its preamble cut off mid-sentence with its terminal escapes
    assert "Unsupported global: GLOBAL print was not an allowed global" in line and "[1m" not in line


# --- values and outputs checked before any work -------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf"])  # negative values mean "every token"
def test_a_cfg_interval_that_is_not_a_finite_step_is_one_line(cli, tmp_path, value):
    code, _, err = cli("image", "-p", "a red circle", "--cfg-interval", value, "-o", tmp_path / "o.png")
    assert "--cfg-interval" in one_line(code, err) and not list(tmp_path.iterdir())


def test_an_empty_video_prompt_is_refused_not_run_unconditionally(cli, tmp_path):
    code, _, err = cli("video", "-p", "", "--frames", "2", "--steps", "1", "-o", tmp_path / "v.mp4")
    assert "the prompt is empty" in one_line(code, err) and not list(tmp_path.iterdir())


def test_a_folder_that_cannot_be_written_is_refused_and_nothing_is_written(cli, tmp_path, char_model_dir, monkeypatch):
    import argen.io.atomic as atomic

    (tmp_path / "ro").mkdir()
    real = atomic.os.access
    # what a read-only folder answers for a user who is not root (the tests may run as root, who may write anywhere)
    monkeypatch.setattr(atomic.os, "access", lambda p, mode: False if str(p) == str(tmp_path / "ro") else real(p, mode))
    code, _, err = cli("text", "--model", char_model_dir, "-p", "A", "--max-new-tokens", "2", "-o", tmp_path / "ro" / "o.txt")
    assert "is not a writable folder" in one_line(code, err) and not list((tmp_path / "ro").iterdir())


@pytest.mark.parametrize("flag, value", [("--seq-len", "0"), ("--seq-len", "-5"), ("--n", "0"), ("--limit", "0"),
                                         ("--max-faces", "0"), ("--val-fraction", "0"), ("--val-fraction", "1.5"),
                                         ("--cfg", "nan"), ("--temperature", "inf")])
def test_an_eval_value_out_of_range_is_refused_not_replaced_by_the_default(cli, tmp_path, char_model_dir, flag, value):
    (tmp_path / "corpus.txt").write_text("To be or not to be, that is the question.\n" * 100)
    code, out, err = cli("eval", "text", "--model", char_model_dir, "--data", tmp_path / "corpus.txt", flag, value)
    assert code == 2 and flag in one_line(code, err) and not out
