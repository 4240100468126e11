"""Image sampling speed, measured in one process on the bundled shapes models.

1. next-scale (VAR-style, 4 forward passes per image) vs next-token (raster, 64 passes), both
   with CFG 3 (so every pass runs a conditional and an unconditional row), at batch 1 and at
   batch 16: images/s and the ratio.
2. each sampler with its KV cache vs recomputing the whole sequence at every step.
3. the time to one 64x64 image with next-scale at batch 1 (target: under 1 s on this CPU,
   process start and model loading excluded).

Run: ``python bench/image_sample.py [--repeats N] [--models DIR]``. Prints ratios.
"""

from __future__ import annotations

import argparse
import time

import torch

PROMPT = "a red circle in the top left"


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from argen.engine.sampling.processors import SamplingConfig
    from argen.modalities.image.pipeline import ImagePipeline

    pipes = {s: ImagePipeline.from_pretrained(sampler=s, device="cpu") for s in ("next-scale", "next-token")}
    sampling = SamplingConfig(cfg_scale=3.0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CFG 3, best of {args.repeats}")
    rates = {}
    for batch in (1, 16):
        for name, pipe in pipes.items():
            ids = [pipe.check_prompt(PROMPT)] * batch
            seeds = list(range(batch))
            for cache in (True, False):
                def run():
                    pipe.decode(pipe.sample_tokens(ids, seeds, sampling, use_cache=cache))
                run()  # warm-up
                t = best_time(run, args.repeats)
                rates[(batch, name, cache)] = batch / t
                print(f"batch {batch:2d}  {name:10s}  cache {'on ' if cache else 'off'}  {batch / t:8.1f} images/s"
                      f"  ({t / batch * 1000:7.1f} ms/image)")
    print()
    for batch in (1, 16):
        r = rates[(batch, "next-scale", True)] / rates[(batch, "next-token", True)]
        print(f"batch {batch:2d}: next-scale / next-token speed  {r:5.1f}x")
        for name in pipes:
            print(f"batch {batch:2d}: {name:10s} cache on / off   {rates[(batch, name, True)] / rates[(batch, name, False)]:5.1f}x")
    one = 1 / rates[(1, "next-scale", True)]
    print(f"one image, next-scale, batch 1: {one:.3f} s (target < 1 s): {'met' if one < 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
