"""The modality contract, checked over every registered modality: the shared flags are in every
command's --help with the same meaning, a bad value of each gives the same one-line error,
a recipe job may set each of them, and the Python API and the CLI write the same bytes."""

from __future__ import annotations

import hashlib
import json

import pytest

import argen
from argen.cli.app import main
from argen.modalities.registry import MODALITIES

SHARED = ["--num", "-n", "--seed", "--model", "--device", "--dtype", "--quantize", "--compile", "--batch-size", "--temperature",
          "--top-k", "--top-p", "--cfg", "--output", "-o", "--json", "--quiet", "--overwrite", "--prompt-file"]
# (flag, bad value, the one-line error every modality gives)
BAD = [("-n", "0", "Error: --num 0: input should be greater than or equal to 1"),
       ("-n", "1000000000", "Error: --num 1000000000: input should be less than or equal to 100000"),
       ("--seed", "-1", "Error: --seed -1: input should be greater than or equal to 0"),
       ("--seed", str(2**64), "Error: --seed 18446744073709551616: input should be less than 9223372036854775808"),
       ("--batch-size", "0", "Error: --batch-size 0: input should be greater than or equal to 1"),
       ("--temperature", "-1", "Error: --temperature -1.0: input should be greater than or equal to 0"),
       ("--temperature", "nan", "Error: --temperature nan: must be a finite number"),
       ("--temperature", "inf", "Error: --temperature inf: must be a finite number"),
       ("--top-k", "0", "Error: --top-k 0: input should be greater than or equal to 1"),
       ("--top-p", "1.5", "Error: --top-p 1.5: input should be less than or equal to 1"),
       ("--cfg", "-2", "Error: --cfg -2.0: input should be greater than or equal to 0"),
       ("--cfg", "inf", "Error: --cfg inf: must be a finite number"),
       ("--cfg", "nan", "Error: --cfg nan: must be a finite number"),
       ("--dtype", "float8", "Error: --dtype 'float8': input should be 'auto', 'float32', 'bfloat16' or 'float16'"),
       ("--device", "tpu", "Error: --device 'tpu': unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps"),
       ("--quantize", "int4", "Error: --quantize 'int4': input should be 'none' or 'int8'")]

# a fast request of each modality with the bundled model, and the flags a diffusion model has no use for
FAST = {
    "text": (["-p", "ROMEO:", "--max-new-tokens", "8"], "out.txt"),
    "image": (["-p", "a red circle in the top left"], "out.png"),
    "video": (["-p", "a red circle", "--frames", "2", "--steps", "1"], "out.mp4"),
    "audio": (["-p", "sine C4 at 120 bpm", "--seconds", "0.2"], "out.wav"),
    "mesh": (["-p", "a cube", "--max-faces", "12"], "out.obj"),
    "crystal": (["--composition", "SrTiO3", "--keep-invalid", "--max-attempts", "1"], "out.cif"),
}
NOT_FOR_DIFFUSION = {"temperature", "top_k", "top_p"}


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("modality", list(MODALITIES))
def test_help_shows_every_shared_flag(modality, capsys):
    assert main([modality, "--help"]) == 0
    out = capsys.readouterr().out
    for flag in SHARED:
        assert f"{flag} " in out or f"{flag}," in out, f"argen {modality} --help lacks {flag}"


@pytest.mark.parametrize("modality", list(MODALITIES))
@pytest.mark.parametrize("flag, value, error", BAD)
def test_a_bad_shared_flag_is_the_same_one_line_error_everywhere(modality, flag, value, error, tmp_path, capsys):
    args, name = FAST[modality]
    code = main([modality, *args, flag, value, "-o", str(tmp_path / name)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[0] == error, err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("modality", list(MODALITIES))
def test_the_api_and_the_cli_write_the_same_bytes(modality, tmp_path, capsys):
    args, name = FAST[modality]
    assert main([modality, *args, "--seed", "3", "-o", str(tmp_path / name), "-q"]) == 0
    prompt = args[1]
    flags = {a.lstrip("-").replace("-", "_"): v for a, v in zip(args[2::2], args[3::2])} if len(args) > 2 else {}
    flags = {k: (int(v) if v.isdigit() else float(v) if v.replace(".", "").isdigit() else v) for k, v in flags.items()}
    if modality == "crystal":
        flags = {"keep_invalid": True, "max_attempts": 1}
    pipe = argen.load(modality=modality, device="cpu")
    out, = pipe(prompt, seed=3, **flags)
    api = out.save(tmp_path / f"api-{name}")
    assert sha(api) == sha(tmp_path / name)


@pytest.mark.slow
def test_a_recipe_with_one_job_of_each_modality_sets_every_shared_flag(tmp_path, capsys):
    jobs = []
    for modality, (args, _) in FAST.items():
        job = {"name": modality, "modality": modality, "prompts": [args[1]], "n": 2, "seed": 5,
               "model": None, "device": "cpu", "dtype": "float32", "quantize": "none", "compile": False, "batch_size": 2,
               "cfg": 1.0}
        if modality != "video":
            job.update(temperature=0.7, top_k=20, top_p=0.95)
        job.update({a.lstrip("-").replace("-", "_"): v for a, v in zip(args[2::2], args[3::2])})
        job.pop("composition", None)
        if modality == "crystal":
            job.update(keep_invalid=True, max_attempts=1)
        for key in ("max_new_tokens", "frames", "steps", "max_faces"):
            if key in job:
                job[key] = int(job[key])
        if "seconds" in job:
            job["seconds"] = float(job["seconds"])
        jobs.append({k: v for k, v in job.items() if v is not None})
    recipe = tmp_path / "all.yaml"
    recipe.write_text(json.dumps({"jobs": jobs}))  # JSON is YAML
    out = tmp_path / "out"
    assert main(["run", str(recipe), "-o", str(out), "-q"]) == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    done = {(r["job"], r["seed"]) for r in records if r["status"] == "done"}
    assert done == {(m, s) for m in FAST for s in (5, 6)}
    for r in records:
        assert sha(out / r["path"]) == r["sha256"]


@pytest.mark.parametrize("flag", sorted(NOT_FOR_DIFFUSION))
def test_a_diffusion_model_names_the_sampling_flags_it_cannot_use(flag, tmp_path, capsys):
    cli_flag = "--" + flag.replace("_", "-")
    value = "5" if flag == "top_k" else "0.5"
    assert main(["video", "-p", "a red circle", "--frames", "2", cli_flag, value, "-o", str(tmp_path / "v.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"Error: {cli_flag} does not apply to bouncing-video"), err
    assert not list(tmp_path.iterdir())
