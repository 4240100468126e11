"""Audio generation speed: the real-time factor (seconds of audio per second of compute) of
the bundled melodies model on this CPU, with the KV cache and recomputing the whole sequence at
every step, measured in one process.

Reference point: MusicGen-small needs about 28 s for 5 s of audio on an M1 CPU (RTF ~0.18).

Run: ``python bench/audio_generate.py [--model NAME|DIR] [--seconds S] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import time

import torch

PROMPT = "square C4 E4 G4 C5 E5 G5 C6 G5 at 120 bpm"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from argen.modalities.audio.pipeline import AudioPipeline

    pipe = AudioPipeline.from_pretrained(args.model, device="cpu")
    print(f"{pipe.name}: torch {torch.__version__}, {torch.get_num_threads()} threads, {args.seconds:g} s of audio, "
          f"cfg {pipe.default_sampling().cfg_scale:g}, best of {args.repeats}")
    rtf = {}
    for cache in (True, False):
        best = float("inf")
        for r in range(args.repeats):
            t0 = time.perf_counter()
            pipe.use_cache = cache
            pipe(PROMPT, seconds=args.seconds, seed=r)
            best = min(best, time.perf_counter() - t0)
        rtf[cache] = args.seconds / best
        print(f"cache {'on ' if cache else 'off'}  {best:6.2f} s  real-time factor {rtf[cache]:5.2f}x")
    print(f"KV cache speed-up: {rtf[True] / rtf[False]:.2f}x; "
          f"{'faster' if rtf[True] > 1 else 'slower'} than real time with the cache")


if __name__ == "__main__":
    main()
