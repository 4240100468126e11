"""`argen image` with a Janus checkpoint saved by transformers (a tiny random
``JanusForConditionalGeneration``): PNGs of the model's size, published defaults in the record,
a row the same alone or in a batch, --negative-prompt, --inpaint/--mask, batch recipes, and the
one-line refusals (nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import argen
from argen.cli.app import main
from argen.errors import UsageError

pytest.importorskip("transformers")
torch.set_num_threads(1)

PROMPT = "a photo of a cat"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from tests.janus_tiny import save_tiny_janus

    folder = tmp_path_factory.mktemp("janus") / "tiny-janus"
    save_tiny_janus(folder)
    return folder


@pytest.fixture(scope="module")
def size(model_dir):
    from argen.checkpoints.argen_format import read_json
    from argen.modalities.image.janus.config import janus_spec

    return janus_spec(read_json(model_dir / "config.json")).image_size


def pixels(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def meta(path):
    from PIL import Image

    from argen.io.png import CHUNK

    with Image.open(path) as im:
        return json.loads(im.info[CHUNK])


def run(args, capsys):
    code = main(["image", *args, "-q"])
    return code, capsys.readouterr().err.strip().splitlines()


def test_the_cli_writes_pngs_of_the_models_size_with_the_published_defaults(model_dir, size, tmp_path, capsys):
    code, err = run(["--model", str(model_dir), "-p", PROMPT, "-n", "2", "--seed", "0",
                     "-o", str(tmp_path / "cat-{i}.png"), "--grid"], capsys)
    assert code == 0, err
    a, b = pixels(tmp_path / "cat-0.png"), pixels(tmp_path / "cat-1.png")
    assert a.shape == b.shape == (size, size, 3)
    assert (tmp_path / "cat-grid.png").is_file()
    assert not np.array_equal(a, b)  # two seeds, two images
    # the batch's second row is what seed 1 makes alone
    code, err = run(["--model", str(model_dir), "-p", PROMPT, "--seed", "1", "-o", str(tmp_path / "alone.png")], capsys)
    assert code == 0, err
    assert np.array_equal(pixels(tmp_path / "alone.png"), b)


def test_the_record_names_the_family_and_its_published_sampling(model_dir):
    pipe = argen.load(str(model_dir), device="cpu")
    assert type(pipe).__name__ == "JanusPipeline"
    out, = pipe(PROMPT, seed=0)
    assert out.metadata["family"] == "janus" and out.metadata["prompt"] == PROMPT
    assert out.metadata["sampling"]["cfg_scale"] == 5.0 and out.metadata["sampling"]["temperature"] == 1.0


def test_the_api_and_the_engine_give_the_same_image(model_dir):
    from argen.modalities.image.janus.pipeline import JanusImage

    out, = argen.load(str(model_dir), device="cpu")(PROMPT, seed=4, cfg=3.0, top_k=10)
    engine = JanusImage.from_pretrained(model_dir)
    from argen.engine.sampling.processors import SamplingConfig

    tokens = engine.sample_tokens([PROMPT], seeds=[4], sampling=SamplingConfig(temperature=1.0, cfg_scale=3.0, top_k=10))
    assert np.array_equal(out.pixels, engine.decode(tokens)[0])


def test_a_negative_prompt_is_what_the_unconditional_branch_reads(model_dir):
    pipe = argen.load(str(model_dir), device="cpu")
    plain, = pipe(PROMPT, seed=0, temperature=0)
    neg, = pipe(PROMPT, seed=0, temperature=0, negative_prompt="a dog")
    neg2, = pipe(PROMPT, seed=0, temperature=0, negative_prompt="a dog")
    assert neg.metadata["negative_prompt"] == "a dog"
    assert np.array_equal(neg.pixels, neg2.pixels) and not np.array_equal(plain.pixels, neg.pixels)


def test_inpainting_keeps_the_tokens_outside_the_mask(model_dir, size, tmp_path, capsys):
    from PIL import Image

    code, err = run(["--model", str(model_dir), "-p", PROMPT, "--seed", "0", "-o", str(tmp_path / "src.png")], capsys)
    assert code == 0, err
    mask = np.zeros((size, size), np.uint8)
    mask[: size // 2] = 255  # regenerate the top half
    Image.fromarray(mask).save(tmp_path / "mask.png")
    pipe = argen.load(str(model_dir), device="cpu")
    engine, seen = pipe.engine, []
    decode = engine.decode
    engine.decode = lambda tokens: seen.append(tokens) or decode(tokens)
    out, = pipe(PROMPT, seed=5, inpaint=str(tmp_path / "src.png"), mask=str(tmp_path / "mask.png"))
    assert out.metadata["inpaint"] is True and out.pixels.shape == (size, size, 3)
    source = engine.encode(np.array(pixels(tmp_path / "src.png"))[None])[0].view(engine.grid, engine.grid)
    got = seen[0][0].view(engine.grid, engine.grid)
    half = engine.grid // 2
    assert torch.equal(got[half:], source[half:])  # teacher-forced: the source's tokens
    assert not torch.equal(got[:half], source[:half])  # sampled anew (another seed)
    # the CLI writes what the API makes
    code, err = run(["--model", str(model_dir), "-p", PROMPT, "--seed", "5", "--inpaint", str(tmp_path / "src.png"),
                     "--mask", str(tmp_path / "mask.png"), "-o", str(tmp_path / "out.png")], capsys)
    assert code == 0, err
    assert np.array_equal(pixels(tmp_path / "out.png"), out.pixels)


@pytest.mark.parametrize("args, message", [
    (["-p", PROMPT, "--negative-prompt", "a dog", "--cfg", "1"], "--negative-prompt needs classifier-free guidance"),
    (["-p", "a cat " * 60], "this model takes at most"),
    (["-p", PROMPT, "--more-smooth"], "--more-smooth is an option of VAR models"),
])
def test_bad_input_is_one_line_and_nothing_is_written(model_dir, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    out.mkdir()
    code, err = run(["--model", str(model_dir), *args, "-o", str(out / "x.png")], capsys)
    assert code != 0 and message in err[0], err
    assert len(err) <= 2 and not list(out.iterdir())


def test_the_api_needs_a_prompt(model_dir):
    with pytest.raises(UsageError, match="give a prompt"):
        argen.load(str(model_dir), device="cpu")(None)


def test_a_folder_that_is_not_a_checkpoint_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, err = run(["--model", str(tmp_path / "empty"), "-p", PROMPT, "-o", str(tmp_path / "x.png")], capsys)
    assert code != 0 and "has no config.json" in err[0]
    assert not (tmp_path / "x.png").exists()


def test_a_recipe_runs_janus_jobs(model_dir, tmp_path, capsys):
    recipe = tmp_path / "janus.yaml"
    recipe.write_text(json.dumps({"jobs": [{"name": "cats", "modality": "image", "model": str(model_dir),
                                            "prompts": [PROMPT, "a red apple"], "n": 1, "seed": 2, "cfg": 4.0,
                                            "negative_prompt": "blurry", "device": "cpu"}]}))
    assert main(["run", str(recipe), "--dry-run"]) == 0
    out = tmp_path / "out"
    assert main(["run", str(recipe), "-o", str(out), "-q"]) == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in records) == ["done", "done"]
    for r in records:
        m = meta(out / r["path"])
        assert m["family"] == "janus" and m["sampling"]["cfg_scale"] == 4.0 and m["negative_prompt"] == "blurry"


def test_other_families_refuse_in_one_line(tmp_path, capsys):
    from test_llamagen import SMALL_VQ, official_gpt_state, small_cfg  # a class-conditional LlamaGen, tiny

    from argen.modalities.image.llamagen.convert import convert_llamagen
    from argen.modalities.image.llamagen.vq import LlamaGenVQ

    torch.manual_seed(0)
    torch.save({"model": LlamaGenVQ(SMALL_VQ).state_dict()}, tmp_path / "vq.pt")
    torch.save({"model": official_gpt_state()}, tmp_path / "gpt.pt")
    folder = convert_llamagen(tmp_path / "vq.pt", tmp_path / "gpt.pt", tmp_path / "lg", cfg=small_cfg(), vq_cfg=SMALL_VQ)
    out = tmp_path / "out"
    out.mkdir()
    for args, message in ((["--model", str(folder), "-p", "3", "--negative-prompt", "a dog"],
                           "--negative-prompt does not apply to lg, a class-conditional model"),
                          (["--model", "shakespeare-char", "-p", PROMPT], "shakespeare-char is a text model: use argen text"),
                          (["--model", str(tmp_path / "gpt.pt"), "-p", PROMPT], "gpt.pt is not an image model")):
        code, err = run([*args, "-o", str(out / "x.png")], capsys)
        assert code != 0 and message in err[0], err
        assert len(err) <= 2 and not list(out.iterdir())
