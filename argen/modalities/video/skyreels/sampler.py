"""The diffusion-forcing loop over one window of latent frames, with or without the KV cache.

Uncached (``use_cache=False``) it is diffusers' SkyReels-V2 diffusion-forcing denoising loop:
every pass runs the whole window (history, finished, moving and not-yet-started blocks) and
steps the blocks the schedule moves. Cached, it runs only the moving blocks: with block-causal
attention a block reads only itself and earlier blocks, so blocks not started cannot change
anything that is kept, and finished blocks (and the history) are fed at a fixed timestep with
fixed latents, so their keys and values are the same in every pass: they are written to the KV
cache once, when they finish, and read from it afterwards (CausVid / Self-Forcing's cache).
Both give the same numbers; tests check it. Classifier-free guidance runs the caption rows and
the negative-caption rows as one batch (diffusers runs two passes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from argen.modalities.video.skyreels.schedule import Schedule, timestep_matrix


@dataclass
class BlockDone:
    """Progress after a causal block is finished. ``first``: its first latent frame in the whole
    video (history included); ``latents`` (B, C, block, h, w); ``done``/``total``: new latent
    frames finished so far / to make in this generation."""

    window: int
    first: int
    latents: torch.Tensor
    done: int = 0
    total: int = 0


@dataclass
class Sampler:
    """How one window is sampled. ``timesteps`` (S,) highest first; ``make_stepper()`` gives one
    block's stepper (``.step(v, k, x, generators)``); ``block`` latent frames per causal block
    (attention is block-causal when > 1); ``addnoise``: timestep of the light noise on history
    frames (SkyReels' ``addnoise_condition``; drawn once per window, see :func:`sample_window`)."""

    timesteps: torch.Tensor
    make_stepper: Callable[[], object]
    ar_step: int = 0
    block: int = 1
    cfg: float = 1.0
    addnoise: float = 0.0

    @property
    def guided(self) -> bool:
        return self.cfg > 1.0


def _groups(sched: Schedule, first_block: int) -> list[tuple[int, int]]:
    """Runs of consecutive blocks (from ``first_block``) with identical schedules, [a, b) each:
    they share one stepper (in synchronous mode every generated block does)."""
    idx = sched.index
    runs, a = [], first_block
    for k in range(first_block + 1, idx.shape[1] + 1):
        if k == idx.shape[1] or not torch.equal(idx[:, k], idx[:, a]):
            runs.append((a, k))
            a = k
    return runs


@torch.inference_mode()
def sample_window(model, text_kv: list, history: torch.Tensor | None, frames: int, sp: Sampler,
                  generators: list[torch.Generator], *, use_cache: bool, fps: torch.Tensor | None = None,
                  latent_shape: tuple[int, int, int], on_block: Callable[[BlockDone], None] | None = None,
                  window: int = 0, start: int = 0) -> torch.Tensor:
    """Sample one window: returns its latents (B, C, frames, h, w), float32, history included.

    ``history`` (B, C, P, h, w): the window's first P latent frames, given (P a multiple of the
    block). ``generators``: one per row (noise drawn on the CPU, so a seed gives the same video on
    any device). ``text_kv``: :meth:`WanModel.text_context` of the caption rows, then (guided)
    the negative rows. ``latent_shape`` (C, h, w). With ``sp.addnoise`` the history is mixed with
    noise once per window (diffusers draws it again every pass; drawing it once is what lets the
    cache hold it). ``start``: the window's first latent frame in the whole video (for events).
    """
    if use_cache and sp.block <= 1:
        raise ValueError("the KV cache needs block-causal attention (block > 1): with full attention "
                         "every frame reads every other, so nothing stays fixed")
    dev = next(model.parameters()).device
    b, fb = len(generators), sp.block
    c, h, w = latent_shape
    lat = torch.cat([torch.randn((1, c, frames, h, w), generator=g, dtype=torch.float32) for g in generators]).to(dev)
    p = 0 if history is None else history.shape[2]
    if p:
        lat[:, :, :p] = history.to(lat)
    sched = timestep_matrix(frames, sp.timesteps, sp.ar_step, p, fb)
    n_steps = len(sp.timesteps)
    inputs = lat[:, :, :p].clone()  # the history as the model reads it
    t_hist = 0.0
    if p and sp.addnoise > 0:
        f = 0.001 * sp.addnoise
        eps = torch.cat([torch.randn((1, c, p, h, w), generator=g, dtype=torch.float32) for g in generators]).to(dev)
        inputs = inputs * (1.0 - f) + eps * f
        t_hist = sp.addnoise
    groups = _groups(sched, p // fb)
    steppers = {g: sp.make_stepper() for g in groups}
    rows = 2 * b if sp.guided else b

    def two(z: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, z]) if sp.guided else z

    def run(a: int, z: int, t: torch.Tensor, **kw) -> torch.Tensor:
        """The model on latent frames [a, z) at per-frame timesteps t (z - a,), guided."""
        x = lat[:, :, a:z].clone()
        tt = t[None].expand(b, -1).clone()
        if a < p:
            x[:, :, a:min(p, z)] = inputs[:, :, a:min(p, z)]
            tt[:, :min(p, z) - a] = t_hist
        v = model(two(x), two(tt), text_kv, frame0=a, block=fb, fps=fps, **kw)
        if not sp.guided:
            return v
        cond, uncond = v.float().chunk(2)
        return uncond + sp.cfg * (cond - uncond)

    cache = model.new_cache(rows, frames, (h // model.cfg.patch[1]) * (w // model.cfg.patch[2])) if use_cache else None
    committed = 0  # frames whose keys and values the cache holds
    finished = 0
    for i in range(sched.passes):
        moving = sched.update[i].nonzero().flatten()
        if len(moving) == 0:
            continue
        a, z = int(moving[0]) * fb, (int(moving[-1]) + 1) * fb
        if use_cache:
            if committed < a:  # blocks finished since the last pass: written once, at their final timestep
                run(committed, a, sched.t[i, committed:a].float().to(dev), cache=cache, commit=True)
                committed = a
            v = run(a, z, sched.t[i, a:z].float().to(dev), cache=cache, commit=False)
            off = a
        else:
            v = run(0, frames, sched.t[i].float().to(dev))
            off = 0
        for g0, g1 in groups:
            if not bool(sched.update[i, g0]):
                continue
            k = int(sched.index[i, g0]) - 1  # the step this pass takes (0-based)
            f0, f1 = g0 * fb, g1 * fb
            lat[:, :, f0:f1] = steppers[(g0, g1)].step(v[:, :, f0 - off:f1 - off].to(lat.dtype), k,
                                                       lat[:, :, f0:f1], generators)
            if k == n_steps - 1 and on_block is not None:
                for blk in range(g0, g1):
                    finished += fb
                    on_block(BlockDone(window, start + blk * fb, lat[:, :, blk * fb:(blk + 1) * fb].clone(), finished))
    return lat
