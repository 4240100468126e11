"""Video extension speed, measured in one process: frames/s of block diffusion with the KV
cache (context written once per finished block) against recomputing the whole context at every
denoising step, at a 16-frame context; and the codec vs denoising split of a generation.

Targets: at least 2x from the cache at 16 context frames (Ca2-VDM reports 2.5x).

Run: ``python bench/video_extend.py [--model NAME|DIR] [--frames N] [--steps S]``
(``--random-weights`` measures the architecture of the bundled recipe without trained weights).

``--skyreels``: SkyReels-V2 diffusion forcing (the Wan 2.1 transformer) on random weights at a
reduced size that fits a CPU, saved in the official layout and loaded by both sides: frames/s of
a clip extension with argen (KV cache, one batch for the guided and unguided rows, the text's
keys and values once) against diffusers' ``SkyReelsV2DiffusionForcingVideoToVideoPipeline``
(aim: 1.5x), and of argen's causal cached mode against recomputing every window (same numbers,
checked). Both include encoding the clip's tail with the VAE; neither decodes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--context", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=2, help="--skyreels: timed runs of each variant (the best counts)")
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--skyreels", action="store_true", help="SkyReels-V2 DF vs diffusers (see the module docstring)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.skyreels:
        torch.set_num_threads(args.threads or 1)
        return skyreels(args)
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


def skyreels(args) -> None:
    """argen vs diffusers on a reduced SkyReels-V2 DF model (random weights, official layout)."""
    import tempfile
    import types

    import diffusers.pipelines.skyreels_v2.pipeline_skyreels_v2_diffusion_forcing_v2v as v2v
    import numpy as np
    from PIL import Image

    from argen.modalities.video.skyreels.pipeline import SkyReelsVideo
    from argen.modalities.video.skyreels.tiny import build_tiny

    v2v.ftfy = types.SimpleNamespace(fix_text=lambda s: s)  # only if ftfy is missing: identity on ASCII
    size, steps, cfg, block, ar, window, overlap, text_len = (96, 160), args.steps, 6.0, 3, 4, 57, 9, 512
    frames = args.frames
    folder = Path(tempfile.mkdtemp(prefix="argen-skyreels-bench-")) / "df"
    _, ref = build_tiny(folder, heads=4, head_dim=64, layers=4, ffn=1024, text_dim=64)
    pipe = SkyReelsVideo.from_pretrained(folder, device="cpu", dtype="float32")
    pipe.text.max_length = text_len
    clip = np.random.default_rng(0).integers(0, 256, size=(overlap + 4, *size, 3), dtype=np.uint8)
    s = pipe.settings(steps=steps, cfg=cfg, block=block, ar_step=ar, window=window, overlap=overlap, addnoise=0.0,
                      negative_prompt="blue sky")
    plan = pipe.plan(frames, len(clip), s)
    frames = plan.frames
    print(f"SkyReels-V2 DF, random weights (dim 256, 4 layers, ffn 1024, text 512 tokens), {size[1]}x{size[0]}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads: {frames} new frames after a "
          f"{len(clip)}-frame clip, {len(plan.windows)} windows of {window} frames (overlap {overlap}), "
          f"causal blocks of {block} latent frames, ar_step {ar}, {steps} steps, guidance {cfg}")

    def ours(cache: bool):
        hist = pipe.vae.encode(clip[-overlap:])
        return pipe.sample("a red fox runs", [0], plan, s, size, hist, cache)

    def theirs():
        return ref(video=[Image.fromarray(f) for f in clip], prompt="a red fox runs", negative_prompt="blue sky",
                   height=size[0], width=size[1], num_frames=overlap + frames, num_inference_steps=steps,
                   guidance_scale=cfg, generator=torch.Generator().manual_seed(0), max_sequence_length=text_len,
                   overlap_history=overlap, base_num_frames=window, ar_step=ar, causal_block_size=block,
                   output_type="latent").frames

    ref.set_progress_bar_config(disable=True)
    ours(True)  # warm-up: imports, the text encoder's first load
    # CPU seconds of this process: on a shared machine wall time mostly measures the neighbours
    # (run with --threads 1: spinning OpenMP workers waiting for a descheduled peer inflate both)
    times: dict[str, list[float]] = {"diffusers": [], "argen cached": [], "argen uncached": []}
    walls: dict[str, list[float]] = {k: [] for k in times}
    out = {}
    for _ in range(args.repeats):  # interleaved, so load changes hit every variant alike
        for name, fn in (("diffusers", theirs), ("argen cached", lambda: ours(True)), ("argen uncached", lambda: ours(False))):
            t0, w0 = time.process_time(), time.perf_counter()
            out[name] = fn()
            times[name].append(time.process_time() - t0)
            walls[name].append(time.perf_counter() - w0)
    rate = {k: frames / min(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:15s} {min(v):7.2f} CPU s (best of {len(v)}; wall {min(walls[k]):6.1f} s)  {rate[k]:6.2f} frames per CPU s")
    diff = max((out["argen cached"] - out["argen uncached"]).abs().max().item(),
               (out["argen cached"] - out["diffusers"]).abs().max().item())
    print(f"argen vs diffusers: {rate['argen cached'] / rate['diffusers']:.2f}x   cached vs uncached: "
          f"{rate['argen cached'] / rate['argen uncached']:.2f}x   (max latent difference {diff:.1e})")


if __name__ == "__main__":
    main()
