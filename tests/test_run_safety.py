"""`argen run` keeps its output folder safe: one run at a time (a lock naming the holder), a
manifest that cannot be redirected or broken by a torn line, the user's own files (``*.part``
included) never deleted or replaced unless --overwrite, prompt files confined to the recipe's
folder, and plans bounded before they are expanded."""

from __future__ import annotations

import json
import os
import time

import pytest
from test_run import manifest, write

from argen.batch.manifest import Manifest
from argen.batch.plan import build_plan
from argen.batch.recipe import load_run_recipe
from argen.errors import ArgenError


def small_recipe(model, seeds=2, extra="") -> str:
    return (f"defaults:\n  model: {model}\n  max_new_tokens: 4\njobs:\n  - name: a\n    modality: text\n"
            f"    prompts: [\"To be\"]\n    seeds: {{start: 0, count: {seeds}}}\n{extra}")


def one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), err
    assert "internal error" not in err
    return lines[0]


def test_a_manifest_that_is_a_symlink_is_refused(cli, tmp_path, char_model_dir):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere.jsonl"
    out.mkdir()
    elsewhere.write_text("")
    os.symlink(elsewhere, out / "manifest.jsonl")
    code, _, err = cli("run", write(tmp_path, small_recipe(char_model_dir)), "-o", out)
    assert code == 1 and "manifest.jsonl is a symlink" in one_error(err)
    assert elsewhere.read_text() == "" and sorted(os.listdir(out)) == ["manifest.jsonl"]


@pytest.mark.parametrize("pattern", ["manifest.jsonl", "./manifest.jsonl", "manifest.jsonl/{i}.txt", ".argen-run.lock"])
def test_an_output_pattern_naming_the_runs_own_files_is_refused(tmp_path, pattern):
    recipe = write(tmp_path, f"jobs:\n  - name: a\n    modality: text\n    prompts: [x]\n    output: '{pattern}'\n")
    parsed, node = load_run_recipe(recipe)
    with pytest.raises(ArgenError, match="would replace the run's own"):
        build_plan(parsed, node, recipe)


@pytest.mark.parametrize("tail", [b'{"key": "x", "status": "do\xe2\x80', b"\x00\xff junk", b'{"key": '])
def test_a_damaged_last_line_is_skipped_reported_and_the_next_record_starts_a_fresh_line(tmp_path, tail):
    m = Manifest(tmp_path / "manifest.jsonl")
    m.append({"key": "a", "status": "done"})
    with open(m.path, "ab") as f:
        f.write(tail)  # a crash mid-line
    assert set(m.load()) == {"a"} and m.damaged == [2]
    m.append({"key": "b", "status": "done"})
    lines = m.path.read_bytes().split(b"\n")
    assert json.loads(lines[-2]) == {"key": "b", "status": "done"}
    assert set(m.load()) == {"a", "b"} and m.damaged == [2]


def test_a_run_reports_a_damaged_manifest_and_finishes(cli, tmp_path, char_model_dir):
    recipe, out = write(tmp_path, small_recipe(char_model_dir)), tmp_path / "out"
    assert cli("run", recipe, "-o", out, "-q")[0] == 0
    with open(out / "manifest.jsonl", "ab") as f:
        f.write('{"key": "torn \u2603'.encode()[:-1])
    (out / "a" / "0000-0.txt").unlink()
    code, stdout, err = cli("run", recipe, "-o", out)
    assert code == 0 and "manifest.jsonl: skipped 1 damaged line (line 3)" in err, err
    assert stdout.strip() == str(out / "a" / "0000-0.txt")
    assert [e["seed"] for e in Manifest(out / "manifest.jsonl").load().values()] == [1, 0]


def test_a_second_run_into_the_same_folder_is_refused_naming_the_holder(cli, tmp_path, char_model_dir):
    from argen.batch.lock import folder_lock

    out = tmp_path / "out"
    with folder_lock(out):
        code, _, err = cli("run", write(tmp_path, small_recipe(char_model_dir)), "-o", out)
    line = one_error(err)
    assert code == 1 and f"{out} is in use by another argen run (pid {os.getpid()}, started " in line, line
    assert sorted(os.listdir(out)) == [".argen-run.lock"]
    assert cli("run", tmp_path / "r.yaml", "-o", out, "-q")[0] == 0  # released


def test_a_users_part_files_are_never_deleted(cli, tmp_path, char_model_dir):
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    mine = [out / "notes.part", out / ".draft.part", out / "a" / ".0000-0.txt.abc.part"]
    for p in mine:
        p.write_text("mine")
    assert cli("run", write(tmp_path, small_recipe(char_model_dir)), "-o", out, "-q")[0] == 0
    assert all(p.read_text() == "mine" for p in mine)
    assert len([e for e in manifest(out) if e["status"] == "done"]) == 2
    assert not [p for p in out.rglob("*") if p.name.startswith(".argen-")  and p.name != ".argen-run.lock"]


def test_an_existing_file_the_manifest_does_not_record_is_refused_unless_overwrite(cli, tmp_path, char_model_dir):
    recipe, out = write(tmp_path, small_recipe(char_model_dir)), tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "0001-1.txt").write_text("mine")
    code, _, err = cli("run", recipe, "-o", out)
    assert code == 2 and f"{out / 'a' / '0001-1.txt'} exists and the manifest does not record it" in one_error(err)
    assert (out / "a" / "0001-1.txt").read_text() == "mine" and not (out / "manifest.jsonl").exists()
    assert cli("run", recipe, "-o", out, "-q", "--overwrite")[0] == 0
    assert (out / "a" / "0001-1.txt").read_text() != "mine"
    # what the manifest records may be remade without --overwrite (here: an output edited since)
    (out / "a" / "0000-0.txt").write_text("edited")
    assert cli("run", recipe, "-o", out, "-q")[0] == 0 and (out / "a" / "0000-0.txt").read_text() != "edited"


def test_prompt_files_outside_the_recipes_folder_need_allow_outside(cli, tmp_path, char_model_dir):
    (tmp_path / "prompts.txt").write_text("To be\n")
    (tmp_path / "r").mkdir()
    recipe = write(tmp_path / "r", small_recipe(char_model_dir).replace('["To be"]', "../prompts.txt"))
    code, _, err = cli("run", recipe, "-o", tmp_path / "out")
    assert code == 1 and "outside the recipe's folder" in one_error(err) and not (tmp_path / "out").exists()
    code, _, err = cli("run", recipe, "-o", tmp_path / "out", "-q", "--allow-outside")
    assert code == 0, err


def test_a_misspelt_job_key_is_named_with_the_nearest_known_one(cli, tmp_path):
    recipe = write(tmp_path, "jobs:\n  - name: a\n    modality: text\n    promts: [x]\n")
    code, _, err = cli("run", recipe, "-o", tmp_path / "o")
    assert code == 1 and one_error(err).endswith(":4: jobs.0.promts: text has no flag 'promts'; did you mean 'prompts'?")


@pytest.mark.parametrize("text, where", [
    ("jobs:\n  - name: a\n    modality: text\n    prompts: [x]\n    seeds: [18446744073709551616]\n", "jobs.0.seeds"),
    ("jobs:\n  - name: a\n    modality: text\n    prompts: [x]\n    seed: 18446744073709551616\n", "jobs.0.seed"),
    ("jobs:\n  - name: a\n    modality: text\n    prompts: [x]\n    seeds: {start: 18446744073709551616, count: 2}\n",
     "jobs.0.seeds.start"),
    ("jobs:\n  - name: a\n    modality: text\n    prompts: [x]\n    seed: lots\n", "jobs.0.seed"),
    ("jobs:\n  - name: a\n    modality: text\n    prompts: [x]\n    n: 200000\n", "jobs.0.n"),
    ("jobs:\n  - name: a\n    modality: text\n    prompts: [x]\n    n: 0\n", "jobs.0.n"),
    ("jobz: []\n", "jobz: Extra inputs are not permitted; did you mean 'jobs'?"),
])
def test_bad_seeds_and_counts_in_recipes_are_one_line_errors(cli, tmp_path, text, where):
    code, _, err = cli("run", write(tmp_path, text), "-o", tmp_path / "o")
    assert code == 1 and where in one_error(err), err


def test_a_recipe_that_is_not_utf8_is_a_one_line_error(cli, tmp_path):
    recipe, data = tmp_path / "r.yaml", b"jobs:\n  - name: a\n    modality: text\n    prompts: [caf\xe9]\n"
    recipe.write_bytes(data)
    code, _, err = cli("run", recipe, "-o", tmp_path / "o")
    assert code == 1 and one_error(err) == f"Error: {recipe} is not UTF-8 text (byte 0xe9 at offset {data.index(233)})"


def test_a_huge_plan_is_refused_before_it_is_expanded(tmp_path):
    prompts = ", ".join(f"p{i}" for i in range(10))
    recipe = write(tmp_path, f"jobs:\n  - name: a\n    modality: text\n    prompts: [{prompts}]\n"
                             "    seeds: {start: 0, count: 100000}\n    grid:\n      top_k: [1, 2, 3]\n")
    parsed, node = load_run_recipe(recipe)
    t0 = time.time()
    with pytest.raises(ArgenError, match=r"jobs.0: this job plans 3000000 samples; argen run plans at most"):
        build_plan(parsed, node, recipe)
    assert time.time() - t0 < 2


def test_a_large_plan_is_quick(tmp_path):
    recipe = write(tmp_path, "jobs:\n  - name: a\n    modality: text\n    prompts: [a, b]\n"
                             "    seeds: {start: 0, count: 50000}\n")
    parsed, node = load_run_recipe(recipe)
    t0 = time.process_time()
    samples = build_plan(parsed, node, recipe)
    assert len(samples) == 100_000 and len({s.key for s in samples}) == 100_000
    assert time.process_time() - t0 < 5  # CPU seconds: a busy machine does not make it fail
