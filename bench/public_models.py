"""Class-conditional ImageNet sampling speed with the public checkpoints, in one process:
var-d16 (VAR, next-scale, 10 scales, 680 tokens) and llamagen-gpt-b-256 (LlamaGen, raster
next-token, 256 tokens), each at batch 8 with its published guidance (so every pass also runs
the unconditional rows), on the current device. Prints images/s, the ratio between them, and
each one's KV-cache speed-up (batch 8, timed once: without the cache LlamaGen recomputes up to
257 positions per token).

The models must be pulled first (`argen weights pull var-d16`, `argen weights pull
llamagen-gpt-b-256`); a model that is not present is skipped with a note, and with neither the
script says so and exits 0. ``--random-weights`` times the same architectures with random
weights instead (no download; the images are noise, the work per image is the same).

Run: ``python bench/public_models.py [--device auto|cpu|cuda] [--batch 8] [--repeats 2]
[--no-uncached] [--random-weights]``.
"""

from __future__ import annotations

import argparse
import time

import torch

MODELS = ("var-d16", "llamagen-gpt-b-256")
LABELS = [207, 360, 387, 974, 88, 979, 417, 279]  # as in VAR's demo notebook


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-uncached", action="store_true", help="skip the (slow) runs without the KV cache")
    ap.add_argument("--random-weights", action="store_true", help="the released architectures, random weights")
    args = ap.parse_args()

    from argen.errors import ArgenError
    from argen.modalities.image.class_pipeline import ClassImagePipeline

    pipes = random_pipelines(args.device) if args.random_weights else {}
    for name in () if args.random_weights else MODELS:
        try:
            pipes[name] = ClassImagePipeline.from_pretrained(name, device=args.device)
        except ArgenError as e:
            print(f"{name}: skipped ({e.message})")
    if not pipes:
        print("no public model is present: pull them with `argen weights pull NAME` first")
        return
    labels = (LABELS * (args.batch // len(LABELS) + 1))[:args.batch]
    dev = next(iter(pipes.values())).device
    print(f"torch {torch.__version__}, device {dev}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"best of {args.repeats}")
    rates = {}
    for name, pipe in pipes.items():
        from argen.modalities.base import Row
        from argen.modalities.image.spec import ImageSpec

        def run(use_cache: bool = True, pipe=pipe) -> None:
            pipe.use_cache = use_cache
            list(pipe.generate(ImageSpec(batch_size=args.batch), [Row(i, str(c), i) for i, c in enumerate(labels)]))

        run()  # warm-up
        t = best_time(run, args.repeats)
        rates[name] = args.batch / t
        sampling = pipe.default_sampling()
        line = f"{name:20s} {rates[name]:7.3f} images/s ({t:.2f} s per batch; cfg {sampling.cfg_scale} {sampling.cfg_schedule})"
        if not args.no_uncached:
            t_plain = best_time(lambda: run(False), 1)
            line += f"; without KV cache {args.batch / t_plain:.3f} images/s, cache speed-up {t_plain / t:.1f}x"
        print(line)
    if len(rates) == 2:
        print(f"var-d16 / llamagen-gpt-b-256: {rates['var-d16'] / rates['llamagen-gpt-b-256']:.1f}x images/s")


def random_pipelines(device: str) -> dict:
    from argen.engine.device import resolve_device
    from argen.engine.transformer import Transformer
    from argen.modalities.image.class_pipeline import ClassImagePipeline
    from argen.modalities.image.llamagen.gpt import llamagen_config
    from argen.modalities.image.llamagen.vq import LlamaGenVQ
    from argen.modalities.image.var.model import VAR, var_config
    from argen.modalities.image.var.vqvae import VQVAE

    dev = resolve_device(device)
    torch.manual_seed(0)
    var = ClassImagePipeline("var", VQVAE().eval().to(dev), VAR(var_config(16)).eval().to(dev), {}, device=dev)
    gpt = Transformer(llamagen_config("gpt-b", 256)).eval().to(dev)
    llamagen = ClassImagePipeline("llamagen", LlamaGenVQ().eval().to(dev), gpt, {}, device=dev)
    return {"var-d16": var, "llamagen-gpt-b-256": llamagen}


if __name__ == "__main__":
    main()
