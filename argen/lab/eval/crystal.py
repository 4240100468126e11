"""`argen eval crystal`: validity, match rate and RMSE on a CDVAE-style test split.

Protocol (facts from lantunes/CrystaLLM/BENCHMARKING.md and bin/benchmark_metrics.py, after
CDVAE/DiffCSP): each test CIF is rewritten as CrystaLLM's preprocessing does and its
``data_<cell composition>`` line is the prompt; ``n`` samples are drawn per composition (no
retries); a sample that can be read, has a sensible cell and no two atoms closer than 0.5 A is
compared with the true structure by ``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)``. Match
rate at n=k: share of compositions with a match among the first k samples; RMSE: mean over
matched compositions of the smallest normalised RMS displacement. Validity: share of all samples
passing every check of :mod:`argen.modalities.crystal.checks`. The same checks on the true structures give
the ceiling a perfect model would reach.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

from argen.console import log
from argen.engine.sampling.processors import SamplingConfig
from argen.modalities.crystal.checks import MAX_SITES, check_cif, min_distance_ok, parse_structure
from argen.modalities.crystal.cif_text import cif_to_text, prompt_of_text, read_split, require_pymatgen


def _rms(matcher, gen, true) -> float | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = matcher.get_rms_dist(gen, true)
        return None if r is None else float(r[0])
    except Exception:  # noqa: BLE001 - pymatgen fails on some degenerate cells
        return None


def evaluate_split(pipe, split: str, n: int = 20, limit: int | None = None, sampling: dict | SamplingConfig | None = None,
                   seed: int = 0, quiet: bool = False) -> dict:
    """Score ``pipe`` (a CrystalPipeline) on the first ``limit`` rows of ``split``."""
    require_pymatgen()
    from pymatgen.analysis.structure_matcher import StructureMatcher

    if isinstance(sampling, dict):
        sampling = SamplingConfig(**sampling)
    sampling = sampling or pipe.sampling(None)
    rows = read_split(split, limit)
    matcher = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)
    valid = samples = 0
    per_check = {"formula": 0, "multiplicity": 0, "bonds": 0, "spacegroup": 0, "cell": 0}
    truth_valid = 0
    rms_1, rms_n = [], []
    start = time.time()
    for k, row in enumerate(rows):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = cif_to_text(row.cif)
            true = parse_structure(row.cif)
        truth_valid += check_cif(text)[0].valid
        seeds = [seed + k * n + i for i in range(n)]
        best = [None] * n  # rms of sample i, if it matched
        for i, gen_text in enumerate(pipe.sample_texts(prompt_of_text(text), seeds, sampling)):
            _, report, structure = pipe.finish(gen_text)
            samples += 1
            valid += report.valid
            for c in per_check:
                per_check[c] += bool(getattr(report, c))
            if structure is not None and report.cell and len(structure) <= MAX_SITES and min_distance_ok(structure):
                best[i] = _rms(matcher, structure, true)
        if best[0] is not None:
            rms_1.append(best[0])
        hits = [r for r in best if r is not None]
        if hits:
            rms_n.append(min(hits))
        if not quiet and (k + 1) % 10 == 0:
            print(f"{k + 1}/{len(rows)} compositions: validity {valid / samples:.3f}, match@1 {len(rms_1) / (k + 1):.3f}, "
                  f"match@{n} {len(rms_n) / (k + 1):.3f}, {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    m = len(rows)
    return {
        "split": str(split), "compositions": m, "n": n, "samples": samples, "seed": seed,
        "temperature": sampling.temperature, "top_k": sampling.top_k,
        "validity": round(valid / samples, 4) if samples else 0.0,
        "checks": {c: round(v / samples, 4) for c, v in per_check.items()} if samples else {},
        "validity_of_true_structures": round(truth_valid / m, 4) if m else 0.0,
        "match_1": round(len(rms_1) / m, 4) if m else 0.0,
        "rmse_1": round(sum(rms_1) / len(rms_1), 4) if rms_1 else None,
        "match_n": round(len(rms_n) / m, 4) if m else 0.0,
        "rmse_n": round(sum(rms_n) / len(rms_n), 4) if rms_n else None,
        "seconds": round(time.time() - start, 1),
    }


def run(model: str | None, split: Path, n: int, limit: int | None, temperature: float | None,
                     device: str, quiet: bool, json_out: bool) -> None:
    """`argen eval crystal`: validity, match rate and RMSE at n=1 and n=N on a test split."""
    from argen.engine.sampling.processors import SamplingConfig
    from argen.errors import UsageError
    from argen.modalities.crystal.pipeline import CrystalPipeline

    if not 1 <= n <= 1000:
        raise UsageError(f"--n must be in [1, 1000], got {n}", hint="the benchmark uses --n 20")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}", hint="e.g. --limit 100")
    if not split.is_file():
        raise UsageError(f"--split {split} not found", hint="give a CDVAE-style CSV, e.g. ../shared/data/crystal/perov_5/test.csv")
    pipe = CrystalPipeline.from_pretrained(model, device=device)
    sampling = dict(pipe.default_sampling)
    if temperature is not None:
        sampling["temperature"] = temperature
    r = evaluate_split(pipe, str(split), n=n, limit=limit, sampling=SamplingConfig(**sampling), quiet=quiet)
    log(f"scored {r['compositions']} compositions x {n} samples in {r['seconds']} s", quiet)
    if json_out:
        print(json.dumps({"model": pipe.name, **r}))
        return
    print(f"validity        {r['validity'] * 100:5.1f}%  (true structures: {r['validity_of_true_structures'] * 100:.1f}%)")
    for c, v in r["checks"].items():
        print(f"  {c:13s} {v * 100:5.1f}%")
    print(f"match rate n=1  {r['match_1'] * 100:5.1f}%  RMSE {r['rmse_1']}")
    print(f"match rate n={n:<3d}{r['match_n'] * 100:5.1f}%  RMSE {r['rmse_n']}")
