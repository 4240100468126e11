"""`argen eval mesh --model DIR` for released mesh models (MeshXL, its fine-tunes, x-mesh-xl,
LLaMA-Mesh): how often what they write is a usable mesh, with argen's constrained decoding and
without it (the model alone).

Each output is judged as decoded, before any cleaning (:mod:`argen.modalities.mesh.metrics`):
``parse`` the share well formed in the model's own format (MeshXL's 9-token faces, LLaMA-Mesh's
OBJ lines), ``watertight``, ``clean`` the share with at least one face and no degenerate or
duplicate face, ``faces`` the mean face count. Sample i has seed ``seed + i``; models that take
text cycle through :data:`PROMPTS`.
"""

from __future__ import annotations

import json
import time

from argen.console import log
from argen.modalities.base import Row
from argen.modalities.mesh.metrics import mesh_metrics

PROMPTS = ("a chair", "a table", "a lamp", "a bench", "a wooden chair with four legs", "a round table",
           "a desk lamp", "a sofa", "a bookshelf", "a stool")
MODES = (("constrained", False), ("unconstrained", True))  # (name, --unconstrained)


def evaluate_released(pipe, n: int, seed: int = 0, sampling=None, max_faces: int | None = None,
                      category: str | None = None, batch_size: int | None = None) -> dict:
    """Validity figures of ``n`` samples per mode: ``{"constrained": {...}, "unconstrained": {...}}``,
    each with ``n parse watertight clean faces seconds_per_mesh``."""
    from argen.modalities.mesh.spec import MeshSpec

    sampling = sampling or pipe.default_sampling()
    flags = {"temperature": sampling.temperature, "top_k": sampling.top_k, "top_p": sampling.top_p}
    prompts = PROMPTS if pipe.model.takes_prompt else (None,)
    rows = [Row(i, prompts[i % len(prompts)], seed + i) for i in range(n)]
    report = {}
    for name, unconstrained in MODES:
        spec = MeshSpec(**flags, max_faces=max_faces, category=category, unconstrained=unconstrained,
                        batch_size=batch_size)
        t0 = time.time()
        outs = list(pipe.generate(spec, rows))
        report[name] = {**mesh_metrics([o.raw for o in outs], [o.parsed for o in outs]),
                        "seconds_per_mesh": round((time.time() - t0) / max(1, n), 3)}
    return report


def print_report(report: dict) -> None:
    """The two modes side by side."""
    on, off = report["constrained"], report["unconstrained"]
    print(f"{'':34s} {'constrained':>12s} {'unconstrained':>14s}")
    for key, label in (("parse", "parse"), ("watertight", "watertight"),
                       ("clean", "no degenerate or duplicate face")):
        print(f"{label:34s} {on[key] * 100:11.1f}% {off[key] * 100:13.1f}%")
    print(f"{'mean faces':34s} {on['faces']:12.1f} {off['faces']:14.1f}")
    print(f"{'seconds per mesh':34s} {on['seconds_per_mesh']:12.3f} {off['seconds_per_mesh']:14.3f}")


def run_released(pipe, n: int, temperature: float | None, max_faces: int | None, category: str | None,
                 quiet: bool, json_out: bool) -> None:
    """`argen eval mesh` for a released model: both modes, printed or as one JSON object."""
    sampling = pipe.default_sampling(temperature=temperature)
    t0 = time.time()
    report = evaluate_released(pipe, n, sampling=sampling, max_faces=max_faces, category=category)
    log(f"generated and scored {2 * n} meshes in {time.time() - t0:.1f} s", quiet)
    if json_out:
        print(json.dumps({"model": pipe.name, "family": pipe.family, **report}))
        return
    print_report(report)
