"""`argen eval crystal`: the crystal-structure-prediction benchmark of CDVAE and DiffCSP, and
CrystaLLM's own checks, on a CDVAE-style test split.

Protocol (facts from lantunes/CrystaLLM BENCHMARKING.md, bin/make_prompts.py,
bin/generate_cifs.py and bin/benchmark_metrics.py, and jiaor17/DiffCSP scripts/compute_metrics.py):
each test CIF is rewritten as CrystaLLM's preprocessing does and the start of that text is the
prompt; ``n`` samples are drawn per composition (no retries). A sample is scored when it can be
read, has a sensible cell (lengths 0.5-1000 A, angles 10-170 degrees) and is valid as DiffCSP
defines it (structural: no two atoms closer than 0.5 A; compositional: SMACT charge neutrality,
:mod:`argen.modalities.crystal.crystallm.validity`), and so is the true structure; then
``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)`` compares them. Match rate at n=k: share
of all compositions with a match among their first k samples; RMSE: mean over matched
compositions of the smallest normalised RMS displacement. Validities are shares of all samples.
CrystaLLM's checks (:mod:`argen.modalities.crystal.checks`) run on every sample and, for the ceiling a
perfect model would reach, on the true structures.

The prompt: CrystaLLM's, ``data_<cell composition>``; with ``props`` the atom-property block that
CrystaLLM's preprocessing derives from the composition alone follows it, so the model does not
spend a quarter of its steps writing what it is given (on the first 16 Perov-5 compositions at
n=20 this made no difference beyond noise: docs/crystal-benchmark.md).

Speed: the samples of many compositions are decoded together (``CrystalPipeline.sample_many``:
one batch, the KV cache, finished rows leave the batch) while worker processes run the checks
and the matching of the compositions already sampled.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from argen.engine.sampling.processors import SamplingConfig
from argen.modalities.crystal.checks import (
    CHECKS,
    MAX_SITES,
    check_cif,
    min_distance_ok,
    parse_structure,
)
from argen.modalities.crystal.cif_text import cif_to_text, prompt_of_text, read_split, require_pymatgen

PROPS_END = "_symmetry_space_group_name_H-M"
_MATCHER = None


def _matcher():
    global _MATCHER
    if _MATCHER is None:
        from pymatgen.analysis.structure_matcher import StructureMatcher

        _MATCHER = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)
    return _MATCHER


def prepare(cif: str, props: bool = False) -> tuple[str, str]:
    """(prompt, CrystaLLM text) of a test CIF."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = cif_to_text(cif)
    return (text[: text.index(PROPS_END)] if props and PROPS_END in text else prompt_of_text(text)), text


def _valid(structure) -> tuple[bool, bool]:
    """(structural, compositional) validity as DiffCSP defines them."""
    from argen.modalities.crystal.crystallm.validity import smact_valid

    if structure is None:
        return False, False
    try:
        comp = smact_valid([str(s) for s in structure.species])
    except Exception:  # noqa: BLE001 - an element SMACT does not know
        comp = False
    return min_distance_ok(structure), comp


def score_composition(true_cif: str, true_text: str, texts: list[str]) -> dict:
    """Every number the benchmark needs from one composition's samples (runs in a worker)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        true = parse_structure(true_cif)
        true_struct, true_comp = _valid(true)
        truth_report = check_cif(true_text)[0]
        samples = []
        for text in texts:
            report, structure = check_cif(text)
            struct_ok, comp_ok = _valid(structure)
            rms = None
            if (structure is not None and report.cell and struct_ok and comp_ok and true_struct and true_comp
                    and len(structure) <= MAX_SITES):
                try:
                    r = _matcher().get_rms_dist(structure, true)
                    rms = None if r is None else float(r[0])
                except Exception:  # noqa: BLE001 - pymatgen fails on some degenerate cells
                    rms = None
            samples.append({"checks": {c: bool(getattr(report, c)) for c in CHECKS}, "valid": report.valid,
                            "struct_valid": struct_ok, "comp_valid": comp_ok, "rms": rms,
                            "ended": text.endswith("\n\n")})
    return {"truth_checks": {c: bool(getattr(truth_report, c)) for c in CHECKS}, "truth_valid": truth_report.valid,
            "truth_struct_valid": true_struct, "truth_comp_valid": true_comp, "samples": samples}


def _prepare_many(cifs: list[str], props: bool) -> list[tuple[str, str]]:
    return [prepare(c, props) for c in cifs]


class Progress:
    """One line on stderr: done/total, rate and ETA (redrawn on a terminal, every 30 s otherwise)."""

    def __init__(self, total: int, unit: str, quiet: bool) -> None:
        self.total, self.unit, self.quiet = total, unit, quiet
        self.start = self.last = time.time()
        self.tty = sys.stderr.isatty()

    def update(self, done: int, note: str = "") -> None:
        now = time.time()
        if self.quiet or (not self.tty and now - self.last < 30 and done < self.total):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else 0.0
        line = (f"{done}/{self.total} {self.unit} [{_clock(now - self.start)} elapsed, ETA {_clock(eta)}, "
                f"{rate:.2f} {self.unit}/s]{' ' + note if note else ''}")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty and not self.quiet:
            print(file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def evaluate_split(pipe, split: str, n: int = 20, limit: int | None = None, sampling: dict | SamplingConfig | None = None,
                   seed: int = 0, quiet: bool = False, workers: int | None = None, props: bool = False,
                   batch: int | None = None) -> dict:
    """Score ``pipe`` (a CrystalPipeline) on the first ``limit`` rows of ``split``.

    Sample ``i`` of composition ``k`` is drawn with seed ``seed + k * n + i``, so the numbers do not
    depend on ``batch`` or ``workers``. ``workers`` processes check and match (default: half the
    CPUs, at least 1; 0 runs them here); the sampler gets the other CPUs' threads. Samples stop
    at the model's context (Perov-5 CIFs are a third of it; ``unfinished`` counts those cut).
    """
    require_pymatgen()
    import torch

    from argen.modalities.crystal.crystallm.validity import require_smact
    from argen.modalities.crystal.pipeline import BATCH

    require_smact()
    if isinstance(sampling, dict):
        sampling = SamplingConfig(**sampling)
    sampling = sampling or pipe.sampling(None)
    rows = read_split(split, limit)
    cpus = os.cpu_count() or 1
    workers = max(1, cpus // 2) if workers is None else workers
    batch = batch or BATCH
    threads = torch.get_num_threads()
    if workers:
        torch.set_num_threads(max(1, cpus - workers))
    # forked before any decoding, so the workers hold no torch threads (they never run torch)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) if workers else None
    start = time.time()
    try:
        cifs = [r.cif for r in rows]
        step = 32
        if pool:
            parts = [pool.submit(_prepare_many, cifs[i:i + step], props) for i in range(0, len(cifs), step)]
            prepared = [x for f in parts for x in f.result()]
        else:
            prepared = _prepare_many(cifs, props)
        per_batch = max(1, batch // n)  # compositions decoded together
        bar = Progress(len(rows), "compositions", quiet)
        futures: list[Future | dict] = []
        sample_seconds = 0.0
        for c0 in range(0, len(rows), per_batch):
            ks = range(c0, min(len(rows), c0 + per_batch))
            prompts = [prepared[k][0] for k in ks for _ in range(n)]
            seeds = [seed + k * n + i for k in ks for i in range(n)]
            t0 = time.time()
            texts = pipe.sample_many(prompts, seeds, sampling, None, batch=batch)
            sample_seconds += time.time() - t0
            for j, k in enumerate(ks):
                args = (rows[k].cif, prepared[k][1], texts[j * n:(j + 1) * n])
                futures.append(pool.submit(score_composition, *args) if pool else score_composition(*args))
            bar.update(ks[-1] + 1, "sampled")
        results = []
        for f in futures:
            results.append(f.result() if isinstance(f, Future) else f)
        bar.update(len(rows), "checked")
        bar.close()
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        torch.set_num_threads(threads)
    seconds = time.time() - start
    out = summarise(results, n)
    return {"split": str(split), "compositions": len(rows), "n": n, "seed": seed, "prompt": "props" if props else "formula",
            "temperature": sampling.temperature, "top_k": sampling.top_k, **out,
            "seconds": round(seconds, 1), "sampling_seconds": round(sample_seconds, 1),
            "samples_per_s": round(out["samples"] / seconds, 3) if seconds else None,
            "workers": workers}


def summarise(results: list[dict], n: int) -> dict:
    """The benchmark's numbers from :func:`score_composition`'s results, in composition order."""
    m = len(results)
    samples = [s for r in results for s in r["samples"]]
    total = len(samples)

    def share(k: int, of: int) -> float:
        return round(k / of, 4) if of else 0.0

    rms_1, rms_n = [], []
    for r in results:
        first = r["samples"][0]["rms"] if r["samples"] else None
        if first is not None:
            rms_1.append(first)
        hits = [s["rms"] for s in r["samples"] if s["rms"] is not None]
        if hits:
            rms_n.append(min(hits))
    return {
        "samples": total,
        "match_1": share(len(rms_1), m), "rmse_1": round(sum(rms_1) / len(rms_1), 4) if rms_1 else None,
        "match_n": share(len(rms_n), m), "rmse_n": round(sum(rms_n) / len(rms_n), 4) if rms_n else None,
        "struct_valid": share(sum(s["struct_valid"] for s in samples), total),
        "comp_valid": share(sum(s["comp_valid"] for s in samples), total),
        "validity": share(sum(s["valid"] for s in samples), total),
        "checks": {c: share(sum(s["checks"][c] for s in samples), total) for c in CHECKS},
        "validity_of_true_structures": share(sum(r["truth_valid"] for r in results), m),
        "checks_of_true_structures": {c: share(sum(r["truth_checks"][c] for r in results), m) for c in CHECKS},
        "true_struct_valid": share(sum(r["truth_struct_valid"] for r in results), m),
        "true_comp_valid": share(sum(r["truth_comp_valid"] for r in results), m),
        "unfinished": sum(not s["ended"] for s in samples),
    }


def run(model: str | None, split: Path, n: int, limit: int | None, temperature: float | None,
                     device: str, quiet: bool, json_out: bool) -> None:
    """`argen eval crystal`: validity, match rate and RMSE at n=1 and n=N on a test split."""
    import json

    from argen.console import log
    from argen.engine.sampling.processors import SamplingConfig
    from argen.errors import UsageError
    from argen.modalities.crystal.pipeline import CrystalPipeline

    if not 1 <= n <= 1000:
        raise UsageError(f"--n must be in [1, 1000], got {n}", hint="the benchmark uses --n 20")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}", hint="e.g. --limit 100")
    from argen.io.files import check_file

    check_file(split, "--split", hint="give a CDVAE-style CSV, e.g. perov_5/test.csv")
    pipe = CrystalPipeline.from_pretrained(model, device=device)
    sampling = dict(pipe.default_sampling)
    if temperature is not None:
        sampling["temperature"] = temperature
    r = evaluate_split(pipe, str(split), n=n, limit=limit, sampling=SamplingConfig(**sampling), quiet=quiet)
    log(f"scored {r['compositions']} compositions x {n} samples in {r['seconds']} s", quiet)
    if json_out:
        print(json.dumps({"model": pipe.name, **r}))
        return
    print(f"match rate n=1  {r['match_1'] * 100:5.1f}%  RMSE {r['rmse_1']}")
    if n > 1:
        print(f"match rate n={n:<3d}{r['match_n'] * 100:5.1f}%  RMSE {r['rmse_n']}")
    print(f"structural validity     {r['struct_valid'] * 100:5.1f}%  (true structures: {r['true_struct_valid'] * 100:.1f}%)")
    print(f"compositional validity  {r['comp_valid'] * 100:5.1f}%  (true structures: {r['true_comp_valid'] * 100:.1f}%)")
    print(f"CrystaLLM's checks      {r['validity'] * 100:5.1f}%  (true structures: {r['validity_of_true_structures'] * 100:.1f}%)")
    for c, v in r["checks"].items():
        print(f"  {c:21s} {v * 100:5.1f}%  (true structures: {r['checks_of_true_structures'][c] * 100:.1f}%)")
    print(f"samples/s               {r['samples_per_s']}  ({r['samples']} samples in {r['seconds']} s)")
