"""`argen image` flags, outputs and errors, on tiny random models."""

import json

import numpy as np
import pytest
from PIL import Image

from argen.io.png import read_png_metadata

PROMPT = "a red circle in the top left"


@pytest.fixture
def model(image_model_dirs):
    return str(image_model_dirs["next-scale"])


def test_writes_pngs_with_metadata_and_a_grid(cli, model, tmp_path):
    pattern = tmp_path / "out-{seed}.png"
    code, out, err = cli("image", "--model", model, "--prompt", PROMPT, "-n", "3", "--seed", "7",
                         "-o", pattern, "--grid", "--cfg", "2.5", "--cfg-schedule", "linear", "--top-k", "50")
    assert code == 0, err
    paths = out.split()
    assert paths[:3] == [str(tmp_path / f"out-{s}.png") for s in (7, 8, 9)]
    for p, seed in zip(paths[:3], (7, 8, 9)):
        with Image.open(p) as im:
            assert im.size == (64, 64) and im.mode == "RGB"
        meta = read_png_metadata(p)
        assert meta["seed"] == seed and meta["prompt"] == PROMPT and meta["sampler"] == "next-scale"
        assert meta["sampling"]["cfg_scale"] == 2.5 and meta["sampling"]["cfg_schedule"] == "linear"
        assert meta["sampling"]["top_k"] == 50
    assert paths[3] == str(tmp_path / "out-grid.png")
    with Image.open(paths[3]) as im:
        # 3 images on a 2x2 sheet: each enlarged to 128 px with a caption line, 4 px gaps
        assert im.size == (2 * (128 + 4) + 4, 2 * (128 + 14 + 4 + 4) + 4)
    assert read_png_metadata(paths[3])["seeds"] == [7, 8, 9]
    code, out, _ = cli("info", paths[0])
    assert code == 0 and "a red circle in the top left" in out and "next-scale" in out


def test_same_seed_same_bytes_different_seed_different_image(cli, model, tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert cli("image", "--model", model, "-p", PROMPT, "--seed", seed, "-o", tmp_path / f"{name}.png", "-q")[0] == 0
    a, b, c = ((tmp_path / f"{n}.png").read_bytes() for n in "abc")
    assert a == b
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "c.png")))


def test_json_output(cli, model, tmp_path):
    code, out, _ = cli("image", "--model", model, "-p", PROMPT, "--seed", "0", "-o", tmp_path / "x.png", "--json")
    rec = json.loads(out.splitlines()[0])
    assert code == 0 and rec["seed"] == 0 and rec["sampler"] == "next-scale" and rec["path"].endswith("x.png")


def test_inpainting_from_files(cli, model, tmp_path):
    from argen.lab.data.shapes import sample

    Image.fromarray(np.asarray(sample(0, 3)[1])).save(tmp_path / "in.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    code, out, err = cli("image", "--model", model, "-p", PROMPT, "--inpaint", tmp_path / "in.png",
                         "--mask", tmp_path / "mask.png", "--seed", "0", "-o", tmp_path / "out.png")
    assert code == 0, err
    assert read_png_metadata(out.strip())["inpaint"] is True


@pytest.mark.parametrize("args, message", [
    (["-p", "a purple circle"], "unknown word(s) in the prompt: purple"),
    (["-p", "a red"], "cannot read"),
    (["-p", PROMPT, "--cfg", "-1"], "--cfg -1.0: input should be greater than or equal to 0"),
    (["-p", PROMPT, "--temperature", "-0.5"], "--temperature -0.5: input should be greater than or equal to 0"),
    (["-p", PROMPT, "--top-p", "1.5"], "--top-p 1.5: input should be less than or equal to 1"),
    (["-p", PROMPT, "-n", "0"], "--num 0: input should be greater than or equal to 1"),
    (["-p", PROMPT, "--sampler", "diffusion"], "--sampler 'diffusion': input should be 'next-scale' or 'next-token'"),
    (["-p", PROMPT, "--sampler", "next-token"], "is a next-scale model"),
    (["-p", PROMPT, "-o", "x.jpg"], "image outputs are .png files"),
    (["-p", PROMPT, "--inpaint", "IMG"], "--inpaint and --mask go together"),
])
def test_bad_input_is_one_line(cli, model, tmp_path, args, message):
    from argen.lab.data.shapes import sample

    Image.fromarray(np.asarray(sample(0, 3)[1])).save(tmp_path / "img.png")
    args = [str(tmp_path / "img.png") if a == "IMG" else a for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "x.png")]
    code, out, err = cli("image", "--model", model, *args)
    assert code != 0 and out == ""
    line = err.strip().splitlines()[0]
    assert line.startswith("Error:") and message in line
    assert "Traceback" not in err


def test_unknown_word_lists_the_vocabulary(cli, model, tmp_path):
    code, _, err = cli("image", "--model", model, "-p", "a teal circle", "-o", tmp_path / "x.png")
    assert code != 0 and "magenta" in err and "triangle" in err and "background" in err


def test_mask_size_and_non_image_inputs(cli, model, tmp_path):
    from argen.lab.data.shapes import sample

    Image.fromarray(np.asarray(sample(0, 3)[1])).save(tmp_path / "in.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "small.png")
    (tmp_path / "notes.png").write_text("not an image")
    base = ["image", "--model", model, "-p", PROMPT, "-o", tmp_path / "x.png"]
    code, _, err = cli(*base, "--inpaint", tmp_path / "in.png", "--mask", tmp_path / "small.png")
    assert code != 0 and "--mask is 32x32 but the image is 64x64" in err
    code, _, err = cli(*base, "--inpaint", tmp_path / "notes.png", "--mask", tmp_path / "small.png")
    assert code != 0 and "is not a readable image" in err
    code, _, err = cli(*base, "--inpaint", tmp_path / "missing.png", "--mask", tmp_path / "small.png")
    assert code != 0 and "not found" in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("pattern, sheet", [("out/img-{seed}.png", "out/img-grid.png"),
                                            ("out/{i:03d}.png", "out/image-grid.png"),
                                            ("a.png", "a-grid.png")])
def test_sheet_path(pattern, sheet):
    from pathlib import Path

    from argen.cli.output import sheet_path

    assert sheet_path(Path(pattern)) == Path(sheet)


def test_a_text_model_is_not_an_image_model(cli, char_model_dir, tmp_path):
    code, _, err = cli("image", "--model", char_model_dir, "-p", PROMPT, "-o", tmp_path / "x.png")
    assert code == 1 and err.startswith(f"Error: {char_model_dir} is a text model: use argen text")
