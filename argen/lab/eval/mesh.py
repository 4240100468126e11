"""Scoring generated meshes: validity, watertightness, face count, and class adherence - the
prompted object must be the class whose reference shapes are nearest by Chamfer distance
(both meshes in the unit cube, surfaces sampled with a fixed seed). References of every class
are drawn with the prompt's modifier (tall, wide, ...), so proportions alone do not decide."""

from __future__ import annotations

import json
import time
from functools import lru_cache

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from argen.console import log
from argen.lab.data import shapes3d
from argen.modalities.mesh.tokenizer import normalize

POINTS = 512  # surface samples per mesh
REFERENCES = 6  # reference meshes per class and modifier


def surface_points(mesh: trimesh.Trimesh, n: int = POINTS, seed: int = 0) -> np.ndarray:
    """``n`` points (n, 3) on the surface of ``mesh`` after unit-cube normalisation."""
    m = trimesh.Trimesh(vertices=normalize(mesh.vertices), faces=mesh.faces, process=False)
    pts, _ = trimesh.sample.sample_surface(m, n, seed=seed)
    return np.asarray(pts)


def chamfer(a: np.ndarray, b: np.ndarray, tree_a: cKDTree | None = None, tree_b: cKDTree | None = None) -> float:
    """Symmetric Chamfer distance: mean nearest-neighbour distance a->b plus b->a, halved."""
    da, _ = (tree_b or cKDTree(b)).query(a)
    db, _ = (tree_a or cKDTree(a)).query(b)
    return float(da.mean() + db.mean()) / 2


@lru_cache(maxsize=8)
def reference_points(modifier: str | None = None) -> dict[str, list[tuple[np.ndarray, cKDTree]]]:
    """Per class: surface points and their k-d tree of REFERENCES meshes with ``modifier``
    (the plain shape for classes that take no modifier)."""
    refs = {}
    for obj in shapes3d.OBJECTS:
        meshes = shapes3d.references(obj, modifier, REFERENCES)
        pts = [surface_points(m, seed=k) for k, m in enumerate(meshes)]
        refs[obj] = [(p, cKDTree(p)) for p in pts]
    return refs


def nearest_class(mesh: trimesh.Trimesh, modifier: str | None = None) -> tuple[str, dict[str, float]]:
    """The class whose nearest reference is closest, and the nearest distance per class."""
    pts = surface_points(mesh)
    tree = cKDTree(pts)
    dists = {obj: min(chamfer(pts, p, tree, t) for p, t in refs)
             for obj, refs in reference_points(modifier).items()}
    return min(dists, key=dists.get), dists


def check(mesh: trimesh.Trimesh) -> dict:
    """Validity of one mesh: has faces, none degenerate or duplicated; watertight; face count."""
    faces = np.asarray(mesh.faces)
    has_faces = len(faces) > 0
    degenerate = has_faces and bool((mesh.area_faces <= 1e-12).any())
    duplicate = has_faces and len(np.unique(np.sort(faces, 1), axis=0)) != len(faces)
    return {"valid": bool(has_faces and not degenerate and not duplicate),
            "watertight": bool(has_faces and mesh.is_watertight), "faces": int(len(faces))}


def score(meshes: list[trimesh.Trimesh], captions: list[str], parsed: list[bool]) -> dict:
    """Aggregate figures for meshes generated for ``captions`` (their prompts)."""
    rows, objects = [], []
    for mesh, caption, ok in zip(meshes, captions, parsed):
        modifier, obj = shapes3d.parse_caption(caption)
        objects.append(obj)
        row = {**check(mesh), "parse": ok, "object": obj}
        if row["valid"]:
            pred, dists = nearest_class(mesh, modifier)
            row.update(adherent=pred == obj, predicted=pred, chamfer=dists[obj])
        else:
            row.update(adherent=False, predicted=None, chamfer=None)
        rows.append(row)
    n = len(rows)
    share = lambda key: round(sum(bool(r[key]) for r in rows) / max(1, n), 4)  # noqa: E731
    chamfers = [r["chamfer"] for r in rows if r["chamfer"] is not None]
    per_class = {}
    for obj in sorted(set(objects)):
        rs = [r for r in rows if r["object"] == obj]
        per_class[obj] = round(sum(r["adherent"] for r in rs) / len(rs), 3)
    return {"n": n, "parse": share("parse"), "valid": share("valid"), "watertight": share("watertight"),
            "adherence": share("adherent"), "chamfer": round(float(np.mean(chamfers)), 4) if chamfers else None,
            "faces": round(float(np.mean([r["faces"] for r in rows])), 1) if rows else 0.0,
            "per_class": per_class}


def eval_captions(n: int, seed: int = 0) -> list[shapes3d.MeshSample]:
    """The held-out captions (and their meshes) of the validation split."""
    return shapes3d.generate(seed, "val", n)


def evaluate_pipeline(pipe, n: int, seed: int = 0, sampling=None, max_faces: int = 400,
                      batch_size: int = 16) -> dict:
    """Generate one mesh per held-out caption (sample seed = its index) and score them; also
    scores the held-out meshes themselves through the tokenizer (the ceiling)."""
    from argen.modalities.base import Row, sampling_flags
    from argen.modalities.mesh.constraints import is_valid
    from argen.modalities.mesh.spec import MeshSpec

    samples = eval_captions(n, seed)
    sampling = sampling or pipe.default_sampling()
    spec = MeshSpec(**sampling_flags(sampling), max_faces=max_faces, batch_size=batch_size)
    t0 = time.time()
    outs = list(pipe.generate(spec, [Row(i, s.caption, i) for i, s in enumerate(samples)]))
    seconds = time.time() - t0
    parsed = [is_valid(o.tokens, pipe.layout.adjacent, max_faces) and len(o.mesh.faces) > 0 for o in outs]
    report = score([o.mesh for o in outs], [s.caption for s in samples], parsed)
    truth = [pipe.layout.detokenize(pipe.layout.tokenize(s.mesh)) for s in samples]
    ceiling = score(truth, [s.caption for s in samples], [True] * n)
    return {**report, "cfg": sampling.cfg_scale, "temperature": sampling.temperature,
            "seconds_per_mesh": round(seconds / max(1, n), 3),
            "ceiling": {k: ceiling[k] for k in ("adherence", "watertight", "chamfer", "faces")}}


def run(model: str | None, n: int, cfg: float | None, temperature: float | None, device: str,
                  quiet: bool, json_out: bool) -> None:
    """`argen eval mesh`: one mesh per held-out shapes3d caption, scored by argen.lab.eval.mesh."""
    import time

    from argen.errors import UsageError

    if not 1 <= n <= 100_000:
        raise UsageError(f"--n must be in [1, 100000], got {n}", hint="e.g. --n 100")
    from argen.modalities.mesh.pipeline import MeshPipeline

    pipe = MeshPipeline.from_pretrained(model, device=device)
    sampling = pipe.default_sampling(cfg_scale=cfg, temperature=temperature)
    t0 = time.time()
    report = evaluate_pipeline(pipe, n, sampling=sampling)
    log(f"generated and scored {report['n']} meshes in {time.time() - t0:.1f} s", quiet)
    if json_out:
        print(json.dumps({"model": pipe.name, **report}))
        return
    c = report["ceiling"]
    print(f"{'':12s} {'model':>8s}  {'data (tokenised)':>16s}")
    print(f"{'parse':12s} {report['parse'] * 100:7.1f}%")
    print(f"{'valid':12s} {report['valid'] * 100:7.1f}%")
    print(f"{'adherence':12s} {report['adherence'] * 100:7.1f}%  {c['adherence'] * 100:15.1f}%")
    print(f"{'watertight':12s} {report['watertight'] * 100:7.1f}%  {c['watertight'] * 100:15.1f}%")
    print(f"{'chamfer':12s} {report['chamfer'] if report['chamfer'] is not None else float('nan'):8.4f}  {c['chamfer']:16.4f}")
    print(f"{'faces':12s} {report['faces']:8.1f}  {c['faces']:16.1f}")
    print("per class    " + ", ".join(f"{k} {v * 100:.0f}%" for k, v in report["per_class"].items()))
