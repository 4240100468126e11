"""`argen run --backend ray` on a local Ray cluster (one per module): model groups run at once, a
worker killed mid-batch loses and duplicates nothing, a batch that kills its worker every time
fails alone, and the files are the bytes a local run writes."""

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from test_run import manifest, recipe_text, write

from argen.batch import ray_backend
from argen.batch.local import Summary, pending, run_local
from argen.batch.plan import build_plan
from argen.batch.ray_backend import PipelineWorker
from argen.batch.recipe import load_run_recipe
from argen.checkpoints.files import sha256_file

ray = pytest.importorskip("ray")
SHARED = "ARGEN_TEST_RAY_DIR"  # a folder the test and its actors share (same machine)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local Ray instance for the module: starting one costs seconds."""
    shared = tmp_path_factory.mktemp("ray-shared")
    path = os.pathsep.join([str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")])  # HookedWorker's module
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             object_store_memory=100 * 2**20,
             runtime_env={"env_vars": {SHARED: str(shared), "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}})
    yield shared
    ray.shutdown()


class HookedWorker(PipelineWorker):
    """The real worker plus test hooks, set by ``control.json`` in the shared folder: it logs each
    batch's start and end, and can wait for the other model's worker or kill itself mid-batch."""

    def __init__(self, modality, params, threads):
        super().__init__(modality, params, threads)
        self.model = Path(params["model"]).name
        self.control = json.loads((Path(os.environ[SHARED]) / "control.json").read_text())
        self.calls = 0

    def log(self, event: str, chunk) -> None:
        line = json.dumps({"event": event, "model": self.model, "pid": os.getpid(), "t": time.time(),
                           "jobs": sorted({s.job for s in chunk})}) + "\n"
        with open(self.control["log"], "a") as f:
            f.write(line)

    def wait_for(self, ok, seconds: float = 60) -> bool:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if ok():
                return True
            time.sleep(0.05)
        return False

    def die(self, chunk) -> None:
        self.log("kill", chunk)
        ray.kill(ray.get_runtime_context().current_actor, no_restart=False)  # Ray restarts it
        time.sleep(120)  # killed in here, mid-batch

    def generate(self, chunk):
        c, self.calls = self.control, self.calls + 1
        self.log("start", chunk)
        if c["mode"] == "overlap" and self.calls == 1:  # held until the other model's worker works too
            others = lambda: any(e["event"] == "start" and e["model"] != self.model for e in events(c["log"]))  # noqa: E731
            if not self.wait_for(others):
                self.log("alone", chunk)
        if c["mode"] == "kill" and self.calls == 2:
            # once the driver has recorded a batch, and only one worker of the run
            if self.wait_for(lambda: Path(c["manifest"]).is_file() and Path(c["manifest"]).stat().st_size > 0):
                try:
                    os.close(os.open(c["marker"], os.O_CREAT | os.O_EXCL))
                    self.die(chunk)
                except FileExistsError:
                    pass
        if c["mode"] == "poison" and any(s.job == "bad" for s in chunk):
            self.die(chunk)  # every time: the batch uses up its retries
        out = super().generate(chunk)
        self.log("end", chunk)
        return out


def events(path) -> list[dict]:
    p = Path(path)
    return [json.loads(line) for line in p.read_text().splitlines()] if p.is_file() else []


def plan(recipe):
    parsed, node = load_run_recipe(recipe)
    return build_plan(parsed, node, recipe)


def run(samples, out, backend, **kw):
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary()
    if backend == "ray":
        ray_backend.run_ray(samples, out, summary, lambda s, p: None, lambda s: None, **kw)
    else:
        run_local(samples, out, summary, lambda s, p: None, lambda s: None)
    return summary


def hooked(cluster, monkeypatch, tmp_path, mode: str) -> Path:
    """Use :class:`HookedWorker` in ``mode``; returns its event log."""
    log = tmp_path / "events.jsonl"
    control = {"mode": mode, "log": str(log), "manifest": str(tmp_path / "ray" / "manifest.jsonl"),
               "marker": str(tmp_path / "killed")}
    (cluster / "control.json").write_text(json.dumps(control))
    monkeypatch.setattr(ray_backend, "PipelineWorker", HookedWorker)
    return log


def hashes(out) -> dict[str, str]:
    entries = manifest(out)
    assert len(entries) == len({e["key"] for e in entries})  # every sample once
    for e in entries:
        if e["status"] == "done":
            assert sha256_file(out / e["path"]) == e["sha256"]
    return {e["path"]: e.get("sha256") for e in entries}


def test_model_groups_run_concurrently(cluster, monkeypatch, tmp_path, char_model_dir):
    other = tmp_path / "other-char"
    shutil.copytree(char_model_dir, other)  # a second model: a second group of actors
    recipe = write(tmp_path, recipe_text(char_model_dir, n_seeds=4).replace(
        "    temperature: 0.5", f"    temperature: 0.5\n    model: {other}"))
    samples = plan(recipe)
    assert len({s.pipeline_key() for s in samples}) == 2
    log = hooked(cluster, monkeypatch, tmp_path, "overlap")
    summary = run(samples, tmp_path / "ray", "ray", workers=1)
    assert sum(summary.done.values()) == len(samples) == 12 and not summary.any_failed
    ev = events(log)
    assert not [e for e in ev if e["event"] == "alone"], "one model's worker ran while the other's did nothing"
    spans = {m: (min(e["t"] for e in ev if e["model"] == m and e["event"] == "start"),
                 max(e["t"] for e in ev if e["model"] == m and e["event"] == "end")) for m in ("tiny-char", "other-char")}
    (a0, a1), (b0, b1) = spans.values()
    assert a0 < b1 and b0 < a1  # each model's work began before the other's ended
    assert hashes(tmp_path / "ray") == hashes(_local(samples, tmp_path))


def _local(samples, tmp_path) -> Path:
    run(samples, tmp_path / "local", "local")
    return tmp_path / "local"


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(cluster, monkeypatch, tmp_path, char_model_dir):
    samples = plan(write(tmp_path, recipe_text(char_model_dir, n_seeds=4)))  # 12 samples in 4 batches
    log = hooked(cluster, monkeypatch, tmp_path, "kill")
    out = tmp_path / "ray"
    summary = run(samples, out, "ray", workers=2)
    ev = events(log)
    kills = [e for e in ev if e["event"] == "kill"]
    assert len(kills) == 1, ev
    # Ray restarted the worker (a new process, its pipeline reloaded) and ran the batch again; ray.kill is
    # asynchronous, so the dying process may still log the end of its batch, but its result never arrives
    again = [e for e in ev if e["event"] == "end" and e["jobs"] == kills[0]["jobs"]]
    assert any(e["pid"] != kills[0]["pid"] for e in again), ev
    assert sum(summary.done.values()) == 12 and not summary.any_failed
    assert {e["key"] for e in manifest(out)} == {s.key for s in samples}
    assert hashes(out) == hashes(_local(samples, tmp_path))  # the bytes a local run writes
    assert pending(samples, out)[0] == []  # a second run would find nothing to do


def test_a_batch_that_kills_its_worker_every_time_and_a_model_that_does_not_load_fail_alone(
        cluster, monkeypatch, tmp_path, char_model_dir):
    broken = tmp_path / "broken-char"
    shutil.copytree(char_model_dir, broken)
    (broken / "config.json").write_text("{}")
    recipe = write(tmp_path, recipe_text(char_model_dir, n_seeds=4, extra_job=f"""  - name: bad
    modality: text
    prompts: ["Oh"]
    seeds: [1, 2]
    top_k: 3
  - name: unloadable
    modality: text
    model: {broken}
    prompts: ["Oh"]
    seeds: [1, 2]
"""))
    samples = plan(recipe)
    log = hooked(cluster, monkeypatch, tmp_path, "poison")
    monkeypatch.setattr(ray_backend, "MAX_TASK_RETRIES", 1)  # each restart reloads torch: seconds here
    out = tmp_path / "ray"
    summary = run(samples, out, "ray", workers=1)
    assert len([e for e in events(log) if e["event"] == "kill"]) == 2  # the first try and its one retry
    assert summary.failed == {"bad": 2, "unloadable": 2} and sum(summary.done.values()) == 12
    entries = manifest(out)
    assert all("Ray worker" in e["error"] and "\n" not in e["error"] for e in entries if e["job"] == "bad")
    local = _local(samples, tmp_path)
    errors = {o: {e["error"] for e in manifest(o) if e["job"] == "unloadable"} for o in (out, local)}
    assert errors[out] == errors[local] and len(errors[out]) == 1  # the local run's loading error
    ours, theirs = hashes(out), hashes(local)
    assert ours.keys() == theirs.keys()
    assert ours.items() - theirs.items() == {(e["path"], None) for e in entries if e["job"] == "bad"}


def test_ray_and_local_backends_write_the_same_files_from_the_cli(cluster, tmp_path, char_model_dir):
    recipe = write(tmp_path, recipe_text(char_model_dir, n_seeds=2))
    address = ray.get_runtime_context().gcs_address  # the module's cluster, joined as another machine would
    out = tmp_path / "ray"
    r = subprocess.run([sys.executable, "-m", "argen", "run", str(recipe), "-o", str(out), "--quiet",
                        "--backend", "ray", "--address", address, "--workers", "2"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert hashes(out) == hashes(_local(plan(recipe), tmp_path)) and len(hashes(out)) == 6
