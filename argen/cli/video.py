"""Generate video by block diffusion: from a caption (`--prompt "a red circle and a blue
square"`), or continuing a clip (`--extend clip.mp4`, any format ffmpeg reads). Writes an MP4
(H.264, generation metadata inside; `argen info FILE` prints it) and prints its path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from argen.cli import options as opt
from argen.cli.output import log


def video(
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="The objects, e.g. 'a red circle and a blue square'.")] = None,
    extend: Annotated[Optional[Path], typer.Option("--extend", metavar="CLIP", help="Continue this clip (cropped and resized to the model's size, resampled to its frame rate).")] = None,
    frames: Annotated[int, typer.Option("--frames", help="New frames to generate.")] = 32,
    steps: Annotated[int, typer.Option("--steps", help="Denoising steps per block.")] = 20,
    scheduler: Annotated[str, typer.Option("--scheduler", metavar="flow-euler|ddim", help="diffusers scheduler for each block.")] = "flow-euler",
    context: Annotated[Optional[int], typer.Option("--context", help="Frames kept in the KV cache (older ones slide out; default: the model's config.json, else 16).")] = None,
    sink: Annotated[int, typer.Option("--sink", help="First frames always kept in the cache (attention sink).")] = 0,
    cond_noise: Annotated[float, typer.Option("--cond-noise", help="Light noise on context frames (flow time in [0, 1)).")] = 0.0,
    cfg: opt.Cfg = None,
    block_frames: Annotated[Optional[int], typer.Option("--block-frames", help="Frames per block (must match the model's).")] = None,
    fps: Annotated[Optional[float], typer.Option("--fps", help="Frame rate written to the MP4 (default: the model's).")] = None,
    only_new: Annotated[bool, typer.Option("--only-new", help="Write only the generated frames, not the clip given to --extend.")] = False,
    output: Annotated[Path, typer.Option("--output", "-o", help="MP4 path; {seed} is filled in.")] = Path("video-{seed}.mp4"),
    model: opt.Model = None,
    seed: opt.Seed = None,
    device: opt.Device = "auto",
    quiet: opt.Quiet = False,
    json_out: opt.Json = False,
) -> None:
    from argen.errors import UsageError
    from argen.io.video import check_video_suffix, read_video, write_mp4
    from argen.pipelines.video import VideoPipeline, VideoRequest

    check_video_suffix(output)
    if fps is not None and not 0 < fps <= 240:
        raise UsageError(f"--fps must be in (0, 240], got {fps}", hint="e.g. --fps 8")
    if prompt is None and extend is None:
        raise UsageError("give --prompt, --extend or both", hint='e.g. --prompt "a red circle and a blue square"')
    req = VideoRequest(prompt=prompt, frames=frames, steps=steps, scheduler=scheduler, context=context, sink=sink,
                       cond_noise=cond_noise, cfg=cfg, block_frames=block_frames, seed=seed, only_new=only_new,
                       clip_name=extend.name if extend else None)  # flags checked before the model loads
    pipe = VideoPipeline.from_pretrained(model, device=device)
    if prompt is not None:
        pipe.vocab.encode(prompt)  # a caption outside the grammar fails before any work
    if extend is not None:
        req.clip = read_video(extend, pipe.size, pipe.fps)

    def progress(done: int, codec_s: float, denoise_s: float) -> None:
        log(f"frames {done}/{frames}  codec {codec_s:.1f} s  denoising {denoise_s:.1f} s", quiet)

    out = pipe(req, on_progress=None if quiet else progress)
    path = write_mp4(Path(str(output).format(seed=out.seed, i=0)), out.frames, fps or out.fps, out.metadata)
    log(f"{out.new_frames} new frames ({len(out.frames)} written) in {out.codec_seconds + out.denoise_seconds:.1f} s: "
        f"codec {out.codec_seconds:.1f} s, denoising {out.denoise_seconds:.1f} s ({pipe.name}), seed {out.seed}", quiet)
    print(json.dumps({"path": str(path), "seed": out.seed, "frames": len(out.frames), "model": pipe.name}) if json_out else path)


def evaluate_video(model: str | None, n: int, cfg: float | None, device: str, quiet: bool, json_out: bool,
                   collide: bool | None = None) -> None:
    """`argen eval video`: predict 8 frames from 8 (PSNR/SSIM vs copying the last frame) and keep
    objects over 32 generated frames, on held-out clips."""
    import time

    from argen.errors import UsageError
    from argen.evaluate_video import video_report
    from argen.pipelines.video import VideoPipeline

    if not 1 <= n <= 10_000:
        raise UsageError(f"--n must be in [1, 10000], got {n}", hint="e.g. --n 64")
    pipe = VideoPipeline.from_pretrained(model, device=device)
    t0 = time.time()
    if cfg is not None and not 0 <= cfg <= 50:
        raise UsageError(f"--cfg must be in [0, 50], got {cfg}", hint="e.g. --cfg 2 (1 disables)")
    report = video_report(pipe, n, cfg=cfg, collide=collide)
    kind = "colliding" if report["collide"] else "passing"
    log(f"evaluated {n} held-out clips ({kind} objects) in {time.time() - t0:.1f} s", quiet)
    if json_out:
        print(json.dumps({"model": pipe.name, **report}))
        return
    print(f"{'frame':>5s} {'PSNR':>7s} {'baseline':>9s} {'SSIM':>6s} {'baseline':>9s}")
    rows = zip(report["psnr_per_frame"], report["baseline_psnr_per_frame"], report["ssim_per_frame"],
               report["baseline_ssim_per_frame"])
    for i, (p, bp, s, bs) in enumerate(rows, 1):
        print(f"{i:5d} {p:7.2f} {bp:9.2f} {s:6.3f} {bs:9.3f}")
    print(f"{'mean':>5s} {report['psnr']:7.2f} {report['baseline_psnr']:9.2f} {report['ssim']:6.3f} {report['baseline_ssim']:9.3f}")
    print(f"objects kept over {report['generated_frames']} generated frames: {report['objects_kept'] * 100:.1f}% of clips")
    counts = report["objects_kept_by_count"].items()
    print("  by number of objects: " + ", ".join(f"{k}: {a} of {b} clips" for k, (a, b) in counts))
