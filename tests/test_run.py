"""`argen run`: plans, resume after a kill, failures recorded, bad recipes refused."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from argen.batch.plan import build_plan
from argen.batch.recipe import load_run_recipe
from argen.checkpoints.files import sha256_file
from argen.errors import ArgenError
from argen.lab.recipes import load_train_recipe


def recipe_text(model, n_seeds=20, extra_job=""):
    return f"""
defaults:
  model: {model}
  max_new_tokens: 12
  batch_size: 4
jobs:
  - name: a
    modality: text
    prompts: ["To be"]
    seeds: {{start: 0, count: {n_seeds}}}
  - name: b
    modality: text
    prompts: ["Now is", "the winter"]
    seeds: {{start: 100, count: {n_seeds // 2}}}
    temperature: 0.5
  - name: c
    modality: text
    prompts: ["A"]
    seeds: {{start: 7, count: {n_seeds // 2}}}
    grid:
      top_k: [5, 20]
    output: "{{job}}/k{{top_k}}-{{seed}}.txt"
{extra_job}"""


def write(tmp_path, text, name="r.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_interrupted_run_resumes_to_exactly_the_plan(tmp_path, char_model_dir):
    recipe = write(tmp_path, recipe_text(char_model_dir))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "argen", "run", str(recipe), "-o", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "manifest.jsonl").is_file() and len((out / "manifest.jsonl").read_text().splitlines()) >= 10:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = manifest(out)
    assert 10 <= len(first) < 60
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    entries = manifest(out)
    done = {e["key"]: e for e in entries if e["status"] == "done"}
    assert len(done) == 60 and len(entries) == 60  # nothing lost, nothing made twice
    for e in done.values():
        assert sha256_file(out / e["path"]) == e["sha256"]
    assert not list(out.rglob("*.part"))
    # a third run has nothing to do
    r = subprocess.run(cmd[:-1], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "" and len(manifest(out)) == 60


def test_failures_are_recorded_and_the_run_goes_on(cli, tmp_path, char_model_dir):
    extra = """  - name: broken-model
    modality: text
    model: /nonexistent/model
    prompts: ["x"]
  - name: odd-prompts
    modality: text
    prompts: ["fine", "caf\u00e9 \u2603", "also fine"]
"""
    recipe = write(tmp_path, recipe_text(char_model_dir, n_seeds=2, extra_job=extra))
    out = tmp_path / "out"
    code, stdout, err = cli("run", recipe, "-o", out, "--json")
    assert code == 1
    entries = manifest(out)
    failed = [e for e in entries if e["status"] == "failed"]
    assert {e["job"] for e in failed} == {"broken-model", "odd-prompts"}
    assert len(failed) == 2 and "not in this model's vocabulary" in " ".join(e["error"] for e in failed)
    done_odd = [e for e in entries if e["job"] == "odd-prompts" and e["status"] == "done"]
    assert len(done_odd) == 2  # the batch was split so its good samples still landed
    assert len([json.loads(line) for line in stdout.splitlines()]) == len(entries) - 2
    assert "failed" in err


def test_dry_run_and_grid(cli, tmp_path, char_model_dir):
    recipe = write(tmp_path, recipe_text(char_model_dir, n_seeds=4))
    code, out, _ = cli("run", recipe, "--dry-run", "-o", tmp_path / "o")
    assert code == 0
    assert "a: 4 text outputs" in out and "c: 4 text outputs" in out and "total: 12 outputs, 12 to make" in out
    parsed, node = load_run_recipe(recipe)
    c = [s for s in build_plan(parsed, node, recipe) if s.job == "c"]
    assert sorted((s.params["top_k"], s.seed) for s in c) == [(5, 7), (5, 8), (20, 7), (20, 8)]
    assert c[0].path == "c/k5-7.txt"
    assert not (tmp_path / "o").exists()


def test_symlink_escape_is_refused(cli, tmp_path, char_model_dir):
    recipe = write(tmp_path, recipe_text(char_model_dir, n_seeds=2))
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, out / "a")
    code, _, err = cli("run", recipe, "-o", out)
    assert code == 1 and not list(outside.iterdir())
    assert any("outside" in e.get("error", "") for e in manifest(out))


@pytest.mark.parametrize("text, where", [
    ("jobs:\n  - name: a\n    modality: text\n    prompts: [x\n", "invalid YAML"),
    ("jobs:\n  - name: a\n    modality: sculpture\n    prompts: [x]\n", ":3: jobs.0.modality"),
    ("jobs:\n  - name: a\n    modality: text\n    prompts: [x]\n    warmth: 3\n", ":5: jobs.0.warmth: text has no flag"),
    ("defaults:\n  temperature: hot\njobs:\n  - name: a\n    modality: text\n    prompts: [x]\n", ":2: defaults.temperature"),
    ("jobs:\n  - name: a\n    modality: text\n    prompts: [x]\n    output: ../{i}.txt\n",
     ":5: jobs.0.output: output '../0.txt' would escape"),
    ("jobs:\n  - name: a\n    modality: text\n    prompts: [x]\n    output: /tmp/{i}.txt\n", "would escape"),
    ("jobs:\n  - name: a\n    modality: text\n    prompts: empty.txt\n", ":4: jobs.0.prompts: prompt file"),
    ("jobs:\n  - name: a\n    modality: text\n    prompts: [x]\n    top_p: 3\n", ":5: jobs.0.top_p"),
    ("jobs:\n  - name: a\n    modality: text\n    prompts: ['']\n", ":4: jobs.0.prompts.0: empty prompt"),
    ("jobs: []\n", ":1: jobs"),
    ("jobz: []\n", "jobz"),
])
def test_bad_recipes_name_the_place(cli, tmp_path, text, where):
    (tmp_path / "empty.txt").write_text("\n\n")
    recipe = write(tmp_path, text)
    code, out, err = cli("run", recipe, "-o", tmp_path / "o")
    lines = err.strip().splitlines()
    assert code == 1 and lines[0].startswith("Error: ") and where in lines[0], err
    assert len(lines) == 2 and not (tmp_path / "o").exists()


def test_every_recipe_in_the_repository_is_valid():
    run_recipes = sorted((ROOT / "recipes").glob("*.yaml"))
    train_recipes = sorted((ROOT / "recipes" / "train").glob("*.yaml"))
    assert run_recipes and train_recipes
    for p in run_recipes:
        parsed, node = load_run_recipe(p)
        assert build_plan(parsed, node, p)
    for p in train_recipes:
        load_train_recipe(p)


def test_plan_refuses_colliding_outputs(tmp_path, char_model_dir):
    recipe = write(tmp_path, "jobs:\n  - name: a\n    modality: text\n    prompts: [x, y]\n    output: same.txt\n")
    parsed, node = load_run_recipe(recipe)
    with pytest.raises(ArgenError, match="two samples would write same.txt"):
        build_plan(parsed, node, recipe)


def test_ctrl_c_stops_cleanly_and_the_rerun_finishes(tmp_path, char_model_dir):
    recipe = write(tmp_path, recipe_text(char_model_dir).replace("max_new_tokens: 12", "max_new_tokens: 30"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "argen", "run", str(recipe), "-o", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "manifest.jsonl").is_file() and len((out / "manifest.jsonl").read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    err = proc.stderr.read()
    assert proc.returncode == 130 and "Error: interrupted" in err and "Traceback" not in err
    assert not list(out.rglob("*.part"))
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 0
    assert len({e["key"] for e in manifest(out) if e["status"] == "done"}) == 60


def test_image_jobs_write_pngs_equal_to_argen_image(cli, tmp_path, image_model_dirs):
    from PIL import Image

    from argen.io.png import read_png_metadata

    model = image_model_dirs["next-scale"]
    recipe = write(tmp_path, f"""
defaults:
  model: {model}
  batch_size: 3
jobs:
  - name: shapes
    modality: image
    prompts: ["a red circle in the top left", "a blue square left of a green triangle"]
    seeds: [0, 1]
    grid:
      cfg: [1.0, 3.0]
    output: "{{job}}/{{prompt_index}}-cfg{{cfg}}-{{seed}}.png"
  - name: bad-words
    modality: image
    prompts: ["a purple circle"]
""")
    out = tmp_path / "out"
    code, _, err = cli("run", recipe, "-o", out, "--quiet")
    assert code != 0  # one job's prompt is outside the vocabulary: recorded, the rest written
    done = [r for r in manifest(out) if r["status"] == "done"]
    failed = [r for r in manifest(out) if r["status"] == "failed"]
    assert len(done) == 8 and len(failed) == 1 and "purple" in failed[0]["error"]
    path = out / "shapes" / "0-cfg3.0-1.png"
    with Image.open(path) as im:
        assert im.size == (64, 64)
    assert read_png_metadata(path)["sampling"]["cfg_scale"] == 3.0
    # the batch output equals what `argen image` makes for the same prompt, seed and flags
    code, stdout, _ = cli("image", "--model", model, "-p", "a red circle in the top left", "--seed", "1",
                          "--cfg", "3", "-o", tmp_path / "single.png", "-q")
    assert code == 0
    assert np_equal(path, tmp_path / "single.png")


def np_equal(a, b) -> bool:
    import numpy as np
    from PIL import Image

    return np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
