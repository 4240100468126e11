"""Video evaluation: predict frames from context and compare them with the true continuation
(PSNR, SSIM, against the copy-the-last-frame baseline); generate long clips and check that
their objects keep count and colour (segmentation)."""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from argen.console import log
from argen.engine.sampling.block_diffusion import extend
from argen.modalities.video.codec import to_uint8, to_unit


def psnr_frames(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR (dB) per frame of uint8 clips (N, T, H, W, 3): (T,), MSE averaged over clips first."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(axis=(2, 3, 4)).mean(0)
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


def ssim_frames(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean SSIM per frame of uint8 clips (N, T, H, W, 3): (T,). Wang et al. (2004): 11x11
    Gaussian window (sigma 1.5), C1 = (0.01 L)^2, C2 = (0.03 L)^2, per channel, valid region."""
    x = torch.from_numpy(a).double().movedim(-1, 2).flatten(0, 1)  # (N*T, 3, H, W)
    y = torch.from_numpy(b).double().movedim(-1, 2).flatten(0, 1)
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    w = (g[:, None] * g[None]) / g.sum() ** 2
    w = w.expand(3, 1, 11, 11)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, w, groups=3)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).view(a.shape[0], a.shape[1]).mean(0).numpy()


@torch.no_grad()
def predict_scores(model, codec, clips: np.ndarray, text: torch.Tensor, context: int = 8, predict: int = 8,
                   steps: int = 20, scheduler: str = "flow-euler", seed: int = 0, batch: int = 16,
                   cfg_scale: float = 1.0, window: int | None = None) -> dict:
    """From the first ``context`` frames of each clip (N, >= context + predict, H, W, 3) predict
    the next ``predict``; PSNR/SSIM per predicted frame and averaged, next to the baseline that
    repeats the last context frame. ``window``: frames the KV cache keeps (default ``context``;
    a model trained on shorter windows reads only the latest of them)."""
    truth = clips[:, context:context + predict]
    made = []
    for i in range(0, len(clips), batch):
        ctx = codec.encode(to_unit(clips[i:i + batch, :context]))
        gen = torch.Generator().manual_seed(seed + i)
        lat = extend(model, text[i:i + batch], ctx, predict, steps=steps, scheduler=scheduler, cfg_scale=cfg_scale,
                     context_frames=window or context, generator=gen)
        made.append(to_uint8(codec.decode(lat)))
    made = np.concatenate(made)
    base = np.repeat(clips[:, context - 1:context], predict, axis=1)
    p, bp = psnr_frames(made, truth), psnr_frames(base, truth)
    s, bs = ssim_frames(made, truth), ssim_frames(base, truth)
    return {"clips": len(clips), "psnr": float(p.mean()), "baseline_psnr": float(bp.mean()),
            "ssim": float(s.mean()), "baseline_ssim": float(bs.mean()),
            "psnr_per_frame": [round(float(v), 2) for v in p], "baseline_psnr_per_frame": [round(float(v), 2) for v in bp],
            "ssim_per_frame": [round(float(v), 4) for v in s], "baseline_ssim_per_frame": [round(float(v), 4) for v in bs]}


EVAL_SEED = 2024  # held-out clips: none of them is a training clip


@torch.no_grad()
def clips_kept(model, codec, clips: np.ndarray, text: torch.Tensor, movers: list, context: int = 8,
               generate: int = 32, steps: int = 20, seed: int = 0, batch: int = 16, cfg_scale: float = 1.0,
               window: int = 16) -> list[bool]:
    """For each clip: do its ``generate`` frames, continued from ``context`` frames and the
    caption, keep every object's colour and no other (segmentation)? ``window``: frames the KV
    cache keeps."""
    from argen.lab.analysis.bouncing import keeps_objects

    kept = []
    for i in range(0, len(clips), batch):
        ctx = codec.encode(to_unit(clips[i:i + batch, :context]))
        lat = extend(model, text[i:i + batch], ctx, generate, steps=steps, context_frames=window, cfg_scale=cfg_scale,
                     generator=torch.Generator().manual_seed(seed + i))
        made = to_uint8(codec.decode(lat))
        kept += [keeps_objects(m, {o.color for o in c.movers}) for m, c in zip(made, movers[i:i + batch])]
    return kept


def kept_by_count(kept: list[bool], movers: list) -> dict[int, list[int]]:
    """``{number of objects: [clips kept, clips]}``: where the lost objects are."""
    out: dict[int, list[int]] = {}
    for k, c in zip(kept, movers):
        row = out.setdefault(len(c.movers), [0, 0])
        row[0] += int(k)
        row[1] += 1
    return dict(sorted(out.items()))


def video_report(pipe, n: int = 64, seed: int = EVAL_SEED, steps: int = 20, cfg: float | None = None,
                 collide: bool | None = None) -> dict:
    """`argen eval video`: :func:`predict_scores` (8 from 8) and :func:`clips_kept` (32
    frames) on ``n`` held-out clips of the bouncing dataset, whose objects bounce off each other
    when ``collide`` (unset: as the model was trained)."""
    from argen.lab.data import bouncing

    collide = pipe.collide if collide is None else collide
    rows = [bouncing.sample(seed, i, "val", 16, pipe.size, collide=collide) for i in range(n)]
    clips = np.stack([f for _, f, _ in rows])
    text = pipe.vocab.encode_batch([c for c, _, _ in rows]).to(pipe.device)
    cfg = pipe.cfg_default if cfg is None else cfg
    window = pipe.context_default  # the frames the model's sampling keeps: at most 8 here (the clip's)
    report = predict_scores(pipe.model, pipe.codec, clips, text, steps=steps, seed=seed, cfg_scale=cfg,
                            window=min(window, 8))
    movers = [c for _, _, c in rows]
    kept = clips_kept(pipe.model, pipe.codec, clips, text, movers, steps=steps, seed=seed, cfg_scale=cfg,
                      window=window)
    report["objects_kept"] = float(np.mean(kept))
    report["objects_kept_by_count"] = kept_by_count(kept, movers)
    report["generated_frames"] = 32
    return {"seed": seed, "steps": steps, "cfg": cfg, "context": window, "collide": collide, **report}


def run(model: str | None, n: int, cfg: float | None, device: str, quiet: bool, json_out: bool,
                   collide: bool | None = None) -> None:
    """`argen eval video`: predict 8 frames from 8 (PSNR/SSIM vs copying the last frame) and keep
    objects over 32 generated frames, on held-out clips."""
    import time

    from argen.errors import UsageError
    from argen.modalities.video.pipeline import VideoPipeline

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
