"""The block-diffusion loop: extend a sequence of latent frames block by block, each block
denoised by a diffusers scheduler while attending, through the KV cache, to the clean blocks
before it (CausVid / Ca2-VDM's cache reuse: the context is written once per finished block and
read by every denoising step).

The model supplies the per-block passes (:class:`~argen.modalities.video.dit.VideoDiT`:
``prefill``, ``cached_block``, and a cache-free ``forward`` for the reference path); this module
owns the schedule, the sliding window with attention sinks, and the recompute reference.
"""

from __future__ import annotations

from typing import Callable

import torch

from argen.engine.sampling.window import BlockWindow

SCHEDULERS = ("flow-euler", "ddim")
Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, flow time t (B,)) -> velocity


def make_scheduler(name: str, steps: int):
    """A diffusers scheduler with ``steps`` timesteps set (imported here: diffusers is slow to load)."""
    if name == "flow-euler":
        from diffusers import FlowMatchEulerDiscreteScheduler

        sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    elif name == "ddim":
        from diffusers import DDIMScheduler

        # "trailing" spacing starts at the last training step, close to pure noise
        sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012, clip_sample=False, set_alpha_to_one=True,
                              timestep_spacing="trailing", prediction_type="epsilon")
    else:
        raise ValueError(f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULERS)}")
    sched.set_timesteps(steps)
    return sched


def denoise(predict: Predict, noise: torch.Tensor, scheduler: str, steps: int, sched=None) -> torch.Tensor:
    """Run ``steps`` scheduler steps from ``noise`` (B, ...) with a flow-matching velocity model.

    flow-euler uses the velocity directly. DDIM runs a variance-preserving chain: at timestep
    tau with a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar), the VP sample is (a + s) times the
    flow sample at time s / (a + s), so the velocity gives eps = x_flow + (1 - t) v.
    ``sched``: a scheduler from :func:`make_scheduler` to reuse (building one costs more than a
    small model's step).
    """
    if sched is None:
        sched = make_scheduler(scheduler, steps)
    else:
        sched.set_timesteps(steps)  # resets the scheduler's step counter for a new block
    x = noise
    b = noise.shape[0]
    for i, tau in enumerate(sched.timesteps):
        if scheduler == "flow-euler":
            t = sched.sigmas[i].to(x.device, torch.float32).expand(b)
            x = sched.step(predict(x, t), tau, x).prev_sample
        else:
            abar = sched.alphas_cumprod[int(tau)]
            a, s = abar.sqrt(), (1 - abar).sqrt()
            t = float(s / (a + s))
            x_flow = x / float(a + s)
            v = predict(x_flow, torch.full((b,), t, device=x.device))
            x = sched.step(x_flow + (1 - t) * v, tau, x, eta=0.0).prev_sample
    return x


def context_frames_used(n: int, block_frames: int, context_frames: int, sink_frames: int = 0) -> list[int]:
    """Indices of the frames of an ``n``-frame context that :func:`extend` keeps in its window:
    the sink blocks, the latest whole blocks and the trailing partial block. Encoding only these
    gives the same result as the whole clip (what slid out of the cache is never read again)."""
    fb = block_frames
    whole = n // fb * fb
    window, sink = max(1, -(-context_frames // fb)), -(-sink_frames // fb)
    if whole // fb <= window:
        return list(range(n))
    return [*range(sink * fb), *range(whole - (window - sink) * fb, n)]


def _noised(x: torch.Tensor, level: float, gen: torch.Generator | None) -> torch.Tensor:
    """Light noise on context frames (the flow path at time ``level``)."""
    if level <= 0:
        return x
    eps = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return (1 - level) * x + level * eps


@torch.inference_mode()
def extend(model, text: torch.Tensor, context: torch.Tensor | None, new_frames: int, *, steps: int = 20,
           scheduler: str = "flow-euler", context_frames: int = 16, sink_frames: int = 0, cond_noise: float = 0.0,
           generator: torch.Generator | None = None, use_cache: bool = True, cfg_scale: float = 1.0,
           on_block: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """Generate ``new_frames`` latent frames after ``context`` (B, Fc, C, H, W) (None: from the
    caption alone); returns them (B, new_frames, C, H, W).

    The cache holds the caption, ``sink_frames`` first frames (rounded up to whole blocks) and
    the latest ``context_frames`` (rounded up to whole blocks); older blocks are evicted and
    positions re-indexed, so the window slides for any length. Context frames that do not fill
    a whole block ride along as known (clean) frames of the first generated block.
    ``cond_noise`` puts light noise (flow time ``cond_noise``) on every frame written to the
    context. ``cfg_scale`` other than 1 runs every pass on the caption and on the empty caption
    (id 0 everywhere: the dropped caption of training) in one doubled batch and guides the
    velocity, v_uncond + cfg_scale * (v_cond - v_uncond); the frames, noise and cache slots are
    shared. ``use_cache=False`` recomputes the whole window at every denoising step: the
    reference the cached path is tested against.
    """
    cfg = model.cfg
    fb, dev = cfg.block_frames, text.device
    b, blk = text.shape[0], cfg.tokens_per_block
    shape = (b, fb, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    window_blocks = max(1, -(-context_frames // fb))
    sink_blocks = -(-sink_frames // fb)
    if sink_blocks >= window_blocks:
        raise ValueError(f"sink frames ({sink_frames}) must leave room in the context ({context_frames} frames)")
    ctx = context if context is not None else torch.zeros(shape[:1] + (0,) + shape[2:], device=dev)
    whole = ctx.shape[1] // fb * fb
    known = ctx[:, whole:]  # (B, k < fb, ...): the start of the first generated block
    history: list[torch.Tensor] = []  # every committed block as written to the context (noised)
    guided = cfg_scale != 1.0
    rows = 2 * b if guided else b  # the model's batch: caption rows, then empty-caption rows
    text_in = torch.cat([text, torch.zeros_like(text)]) if guided else text

    def two(z: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, z]) if guided else z

    def guide(v: torch.Tensor) -> torch.Tensor:
        if not guided:
            return v
        cond, uncond = v.chunk(2)
        return uncond + cfg_scale * (cond - uncond)

    cache = model.new_cache(rows, window_blocks * fb) if use_cache else None
    if use_cache:
        model.prefill(text_in, cache)
    win = BlockWindow(cache, cfg.prompt_len, blk, window_blocks, sink_blocks, model.backbone.rope)
    sched = make_scheduler(scheduler, steps)

    def window() -> torch.Tensor:
        """What the cache holds now: the sink blocks and the latest ones, (B, F, C, H, W)."""
        keep = win.visible(history)
        return torch.cat(keep, dim=1) if keep else ctx[:, :0]

    def commit(block: torch.Tensor) -> None:
        block = _noised(block, cond_noise, generator)
        history.append(block)
        if use_cache:
            win.make_room()
            level = torch.full((rows, fb), cond_noise, device=dev)
            model.cached_block(two(block), level, cache, model.frame_positions(win.slot * fb, fb, rows, dev), commit=True)
            win.slot += 1

    for i in range(0, whole, fb):
        commit(ctx[:, i:i + fb])
    out: list[torch.Tensor] = []
    n_blocks = -(-(known.shape[1] + new_frames) // fb)
    for j in range(n_blocks):
        k = known.shape[1] if j == 0 else 0

        def fix(x: torch.Tensor, k: int = k) -> torch.Tensor:  # known frames stay clean
            return torch.cat([known, x[:, k:]], dim=1) if k else x

        def times(t: torch.Tensor, k: int = k) -> torch.Tensor:  # (B,) -> per frame (B, fb)
            per_frame = t[:, None].expand(b, fb).clone()
            per_frame[:, :k] = 0.0
            return per_frame

        win.make_room()
        if use_cache:
            pos = model.frame_positions(win.slot * fb, fb, rows, dev)

            def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return guide(model.cached_block(two(fix(x)), two(times(t)), cache, pos, commit=False))
        else:
            past = window()
            past_t = torch.full(past.shape[:2], cond_noise, device=dev)

            def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                seq = torch.cat([past, fix(x)], dim=1)
                return guide(model(text_in, two(seq), two(torch.cat([past_t, times(t)], dim=1)))[:, -fb:])

        noise = torch.randn(shape, generator=generator, device=dev)
        block = fix(denoise(predict, noise, scheduler, steps, sched))
        out.append(block[:, k:])
        if on_block is not None:
            on_block(block[:, k:])
        if j < n_blocks - 1:
            commit(block)
    return torch.cat(out, dim=1)[:, :new_frames]
