"""`argen run --backend ray` on a local Ray instance, including a worker killed mid-run."""

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from test_run import manifest, recipe_text, write

from argen.checkpoints.files import sha256_file

pytest.importorskip("ray")


def actor_pids() -> list[int]:
    r = subprocess.run(["pgrep", "-f", "ray::PipelineWorker"], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def test_ray_run_survives_a_killed_worker_and_resumes(tmp_path, char_model_dir):
    recipe = write(tmp_path, recipe_text(char_model_dir).replace("max_new_tokens: 12", "max_new_tokens: 40")
                   .replace("batch_size: 4", "batch_size: 2"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "argen", "run", str(recipe), "-o", str(out), "--quiet",
           "--backend", "ray", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, killed = time.time() + 180, None
    while time.time() < deadline and proc.poll() is None:
        lines = (out / "manifest.jsonl").read_text().splitlines() if (out / "manifest.jsonl").is_file() else []
        pids = actor_pids()
        if len(lines) >= 6 and pids:
            killed = pids[0]
            subprocess.run(["kill", "-9", str(killed)])
            break
        time.sleep(0.1)
    assert killed is not None, "no worker was running mid-run"
    try:
        proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        raise
    # the driver replaced the dead actor and resubmitted its batch: the first run already finished
    first = manifest(out)
    assert proc.returncode == 0 and sum(e["status"] == "done" for e in first) == 60, proc.stderr.read()[-3000:]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    entries = manifest(out)
    assert entries == first  # the re-run found nothing to do
    done = [e for e in entries if e["status"] == "done"]
    assert len(done) == 60 and len({e["key"] for e in done}) == 60  # nothing lost, nothing twice
    for e in done:
        assert sha256_file(out / e["path"]) == e["sha256"]


def test_ray_and_local_backends_write_the_same_files(tmp_path, char_model_dir):
    recipe = write(tmp_path, recipe_text(char_model_dir, n_seeds=2))
    outs = {}
    for backend in ("local", "ray"):
        out = tmp_path / backend
        r = subprocess.run([sys.executable, "-m", "argen", "run", str(recipe), "-o", str(out), "--quiet",
                            "--backend", backend], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        outs[backend] = {e["path"]: e["sha256"] for e in manifest(out)}
    assert outs["local"] == outs["ray"] and len(outs["local"]) == 6
    assert json.loads((tmp_path / "ray" / "manifest.jsonl").read_text().splitlines()[0])["status"] == "done"
