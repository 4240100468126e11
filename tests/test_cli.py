"""The argen command as a user meets it: outputs, metadata, streams, and one-line errors."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT


def test_text_streams_to_stdout_and_is_reproducible(cli, char_model_dir):
    args = ("text", "--model", char_model_dir, "--prompt", "To be", "--max-new-tokens", "30", "--seed", "3")
    code, out, err = cli(*args)
    assert code == 0, err
    assert len(out.rstrip("\n")) >= 20  # 30 characters, possibly ending in newlines
    assert cli(*args)[1] == out
    assert cli(*args, "--no-stream")[1] == out
    assert cli(*args[:-1], "4")[1] != out
    assert "tokens/s" in err and "tokens/s" not in out


def test_output_file_carries_metadata_that_info_reads(cli, char_model_dir, tmp_path):
    target = tmp_path / "gen" / "out.txt"
    code, out, err = cli("text", "--model", char_model_dir, "--prompt", "ROMEO:", "--max-new-tokens", "25",
                         "--seed", "7", "--temperature", "0.5", "--top-k", "10", "-o", target)
    assert code == 0, err
    assert out.strip() == str(target)
    assert len(target.read_text()) >= 1
    code, out, _ = cli("info", target, "--json")
    meta = json.loads(out)
    assert meta["prompt"] == "ROMEO:" and meta["seed"] == 7 and meta["sampling"]["top_k"] == 10
    assert meta["model"] == "tiny-char" and len(meta["model_sha256"]) == 64
    assert [p.name for p in target.parent.iterdir() if p.name.endswith(".part")] == []


def test_several_samples_use_consecutive_seeds(cli, char_model_dir, tmp_path):
    code, out, err = cli("text", "--model", char_model_dir, "--prompt", "A", "--max-new-tokens", "20", "-n", "3",
                         "--seed", "10", "--json")
    assert code == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["seed"] for r in recs] == [10, 11, 12]
    single = json.loads(cli("text", "--model", char_model_dir, "--prompt", "A", "--max-new-tokens", "20",
                            "--seed", "11", "--json")[1])
    assert single["text"] == recs[1]["text"]


def test_stop_string_cuts_the_text(cli, char_model_dir):
    base = ("text", "--model", char_model_dir, "--prompt", "A", "--max-new-tokens", "60", "--seed", "1", "--no-stream")
    full = cli(*base)[1].rstrip("\n")
    stop = full[10:12]
    cut = cli(*base, "--stop", stop)[1].rstrip("\n")
    assert cut == full[: full.find(stop)]
    streamed = cli(*base[:-1], "--stop", stop)[1].rstrip("\n")
    assert streamed == cut


def test_prompt_from_file_and_greedy_speculative_matches(cli, char_model_dir, tmp_path):
    pf = tmp_path / "p.txt"
    pf.write_text("the the the the")
    base = ("text", "--model", char_model_dir, "--prompt-file", pf, "--max-new-tokens", "40", "--temperature", "0")
    plain = cli(*base)[1]
    assert cli(*base, "--lookup", "3")[1] == plain
    assert cli(*base, "--draft", char_model_dir)[1] == plain


@pytest.mark.parametrize("args, message", [
    (("--prompt", ""), "prompt is empty"),
    (("--prompt", "x", "--top-p", "2"), "--top-p"),
    (("--prompt", "x", "--max-new-tokens", "-1"), "--max-new-tokens"),
    (("--prompt", "x", "--temperature", "-0.5"), "--temperature"),
    (("--prompt", "x", "--model", "no-such-model"), "unknown model"),
    (("--prompt", "x", "--bogus"), "No such option"),
    (("--prompt", "x", "--device", "tpu"), "unknown device"),
    (("--prompt", "x", "--lookup", "2", "--draft", "y"), "pick one"),
])
def test_bad_input_is_one_line_error(cli, args, message, tmp_path):
    code, out, err = cli("text", *args, "-o", tmp_path / "never.txt")
    lines = err.strip().splitlines()
    assert code in (1, 2) and lines[0].startswith("Error: ") and message in lines[0], err
    assert len(lines) <= 2 and "Traceback" not in err
    assert not (tmp_path / "never.txt").exists()


def test_prompt_longer_than_context(cli, char_model_dir):
    code, _, err = cli("text", "--model", char_model_dir, "--prompt", "a" * 65)
    assert code == 2 and "longer than the model's context (64)" in err


def test_folder_without_config_and_corrupt_weights(cli, char_model_dir, tmp_path):
    code, _, err = cli("text", "--model", tmp_path, "--prompt", "x")
    assert code == 1 and "has no config.json" in err
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (broken / name).write_bytes((char_model_dir / name).read_bytes())
    (broken / "model.safetensors").write_bytes((char_model_dir / "model.safetensors").read_bytes()[:500])
    code, _, err = cli("text", "--model", broken, "--prompt", "x")
    assert code == 1 and "not a readable safetensors file" in err and "Traceback" not in err


def test_info_on_a_foreign_file(cli, tmp_path):
    f = tmp_path / "plain.txt"
    f.write_text("hello")
    code, _, err = cli("info", f)
    assert code == 1 and "carries no argen metadata" in err


def test_debug_shows_traceback(char_model_dir):
    env = {**os.environ, "ARGEN_DEBUG": "1"}
    r = subprocess.run([sys.executable, "-m", "argen", "text", "--model", "no-such-model", "--prompt", "x"],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 1 and "Traceback" in r.stderr and "Error: unknown model" in r.stderr


def test_cli_modules_do_not_import_torch():
    code = ("import sys, argen.cli.app; "
            "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; print(bad)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_help_via_module_and_console_script():
    r = subprocess.run([sys.executable, "-m", "argen", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0
    for cmd in ("text", "models", "info", "train", "eval"):
        assert cmd in r.stdout


def test_stop_flag_understands_shell_escapes():
    from argen.cli.generate import unescape

    assert unescape(r"\n\n") == "\n\n" and unescape(r"a\tb") == "a\tb"
    assert unescape(r"C:\\new") == "C:\\new" and unescape("end\\") == "end\\"


@pytest.mark.parametrize("args, out", [(["audio", "--prompt", "sine C4"], "a.wav"), (["mesh", "--prompt", "a cube"], "m.obj"),
                                       (["crystal", "--composition", "BaTiO3"], "c.cif")])
def test_a_preview_that_is_not_png_is_refused_before_any_work(args, out, tmp_path, capsys):
    from argen.cli.app import main

    assert main(args + ["--preview", str(tmp_path / "x.jpg"), "-o", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"Error: --preview {tmp_path / 'x.jpg'}: previews are written as PNG"
    assert not list(tmp_path.iterdir())
