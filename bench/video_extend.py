"""Video extension speed, measured in one process: frames/s of block diffusion with the KV
cache (context written once per finished block) against recomputing the whole context at every
denoising step, at a 16-frame context; and the codec vs denoising split of a generation.

Targets: at least 2x from the cache at 16 context frames (Ca2-VDM reports 2.5x).

Run: ``python bench/video_extend.py [--model NAME|DIR] [--frames N] [--steps S]``
(``--random-weights`` measures the architecture of the bundled recipe without trained weights).
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--context", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--random-weights", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from argen.engine.sampling.block_diffusion import extend
    from argen.modalities.video.text import CaptionVocab

    if args.random_weights:
        import yaml

        from argen.modalities.video.dit import VideoDiT, VideoModelConfig

        recipe = yaml.safe_load(open("recipes/train/video-bouncing.yaml"))
        model = VideoDiT(VideoModelConfig(text_vocab=len(CaptionVocab()), **recipe["model"])).eval()
        codec, name = None, "random weights, recipes/train/video-bouncing.yaml"
    else:
        from argen.modalities.video.pipeline import VideoPipeline

        pipe = VideoPipeline.from_pretrained(args.model, device="cpu")
        model, codec, name = pipe.model, pipe.codec, pipe.name
    cfg = model.cfg
    text = CaptionVocab().encode_batch(["a red circle and a blue square"])
    ctx = torch.randn(1, args.context, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    print(f"{name}: torch {torch.__version__}, {torch.get_num_threads()} threads; {args.frames} new frames after "
          f"{args.context} context frames, {args.steps} steps per {cfg.block_frames}-frame block")
    extend(model, text, ctx, 1, steps=1, context_frames=args.context)  # warm-up: imports diffusers, first-call costs
    rate = {}
    for cache in (True, False):
        t0 = time.perf_counter()
        lat = extend(model, text, ctx, args.frames, steps=args.steps, context_frames=args.context,
                     generator=torch.Generator().manual_seed(0), use_cache=cache)
        t = time.perf_counter() - t0
        rate[cache] = args.frames / t
        print(f"cache {'on ' if cache else 'off'}  {t:6.2f} s  {rate[cache]:6.2f} frames/s")
    print(f"KV cache speed-up at {args.context} context frames: {rate[True] / rate[False]:.2f}x")
    if codec is not None:
        t0 = time.perf_counter()
        frames = codec.decode(lat)
        codec.encode(frames)
        t_codec = time.perf_counter() - t0
        t_denoise = args.frames / rate[True]
        print(f"codec (decode + encode of {args.frames} frames) {t_codec:.2f} s vs denoising {t_denoise:.2f} s: "
              f"{t_codec / (t_codec + t_denoise) * 100:.1f}% of the time in the codec")


if __name__ == "__main__":
    main()
