"""Mesh generation speed and sequence length, measured in one process so the ratios compare
like with like.

    python bench/mesh_generate.py [--model shapes3d-mesh] [--n 8] [--threads 1]

Prints faces/s with and without the KV cache (same prompts, same seeds, so the same meshes),
and tokens per face of the held-out shapes3d meshes with plain and with adjacent (MeshAnything
V2) tokenisation.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from argen.lab.data import shapes3d
from argen.modalities.mesh.pipeline import MeshPipeline
from argen.modalities.mesh.tokenizer import canonical, tokenize


def faces_per_second(pipe: MeshPipeline, n: int, use_cache: bool, max_faces: int) -> tuple[float, list]:
    prompts = [s.caption for s in shapes3d.generate(0, "val", n)]
    t0 = time.perf_counter()
    from argen.modalities.base import Row
    from argen.modalities.mesh.spec import MeshSpec

    pipe.use_cache = use_cache
    outs = list(pipe.generate(MeshSpec(max_faces=max_faces, batch_size=n), [Row(i, p, i) for i, p in enumerate(prompts)]))
    seconds = time.perf_counter() - t0
    return sum(len(o.mesh.faces) for o in outs) / seconds, outs


def tokens_per_face(n: int) -> dict[str, float]:
    samples = shapes3d.generate(0, "val", n)
    plain = sum(len(tokenize(s.mesh, False)) for s in samples)
    adjacent = sum(len(tokenize(s.mesh, True)) for s in samples)
    faces = sum(len(canonical(s.mesh)[1]) for s in samples)
    return {"meshes": n, "faces": faces, "plain": round(plain / faces, 3), "adjacent": round(adjacent / faces, 3),
            "adjacent_over_plain": round(adjacent / plain, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="mesh model name or folder (default: the bundled one)")
    ap.add_argument("--n", type=int, default=8, help="meshes per run (one batch)")
    ap.add_argument("--max-faces", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = MeshPipeline.from_pretrained(args.model, device="cpu")
    faces_per_second(pipe, 2, True, 20)  # warm-up
    cached, a = faces_per_second(pipe, args.n, True, args.max_faces)
    uncached, b = faces_per_second(pipe, args.n, False, args.max_faces)
    same = all(x.tokens == y.tokens for x, y in zip(a, b))
    report = {"model": pipe.name, "threads": args.threads, "n": args.n,
              "faces_per_s_cache": round(cached, 2), "faces_per_s_no_cache": round(uncached, 2),
              "cache_speedup": round(cached / uncached, 2), "same_meshes": same,
              "tokens_per_face": tokens_per_face(200)}
    if args.json:
        print(json.dumps(report))
        return
    t = report["tokens_per_face"]
    print(f"faces/s with KV cache     {cached:8.2f}")
    print(f"faces/s without KV cache  {uncached:8.2f}   (cache speed-up x{cached / uncached:.2f}; same meshes: {same})")
    print(f"tokens/face plain         {t['plain']:8.3f}")
    print(f"tokens/face adjacent      {t['adjacent']:8.3f}   (adjacent/plain {t['adjacent_over_plain']:.3f}, "
          f"over {t['meshes']} held-out meshes, {t['faces']} faces)")


if __name__ == "__main__":
    main()
