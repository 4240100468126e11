"""Diffusion-forcing schedules: which timestep every latent frame is at in every pass, how a long
video splits into overlapping windows, and the per-block steppers that move frames along.

The timestep matrix follows diffusers' ``generate_timestep_matrix``
(``pipelines/skyreels_v2/pipeline_skyreels_v2_diffusion_forcing*.py``, after SkyReels-V2's
``diffusion_forcing_pipeline.py``): frames are grouped in causal blocks; each pass moves every
started, unfinished block one step; block i starts when block i-1 is ``ar_step`` steps ahead
(``ar_step`` 0: all blocks together, the synchronous mode), or right after it finishes when
``ar_step`` >= steps; history frames are finished from the start. A finished block is fed at
timestep 0, a block not started at 999 (pure noise).
The windows follow the same pipelines' long-video loop: the first window holds ``base`` latent
frames, every next one starts from the last ``overlap`` latent frames of the video so far.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch


@dataclass
class Schedule:
    """One window's plan. ``t`` (I, F) the timestep of every frame in pass i; ``index`` (I, nb)
    each block's position in the step list (0: not started, k: after k steps... ``steps`` + 1:
    finished); ``update`` (I, nb) the blocks a pass moves one step."""

    t: torch.Tensor
    index: torch.Tensor
    update: torch.Tensor
    block: int

    @property
    def passes(self) -> int:
        return self.t.shape[0]


def timestep_matrix(frames: int, timesteps: torch.Tensor, ar_step: int, ready: int, block: int) -> Schedule:
    """The schedule of a window of ``frames`` latent frames whose first ``ready`` are history.

    ``timesteps`` (S,) the scheduler's steps, highest first. ``frames`` and ``ready`` must be
    multiples of ``block`` (diffusers leaves the remainder undenoised; callers round instead).
    """
    if frames % block or ready % block:
        raise ValueError(f"window of {frames} frames with {ready} history frames does not split into blocks of {block}")
    n_steps = len(timesteps)
    done = n_steps + 1  # the index of a finished block
    template = torch.cat([torch.tensor([999.0], dtype=torch.float64), timesteps.double(),
                          torch.tensor([0.0], dtype=torch.float64)])
    nb = frames // block
    prev = torch.zeros(nb, dtype=torch.long)
    prev[: ready // block] = done
    rows, updates = [], []
    while not bool((prev >= n_steps).all()):
        new = torch.zeros(nb, dtype=torch.long)
        for i in range(nb):
            new[i] = prev[i] + 1 if i == 0 or prev[i - 1] >= n_steps else new[i - 1] - ar_step
        new = new.clamp(0, done)
        updates.append((new != prev) & (new != done))
        rows.append(new)
        prev = new
    index = torch.stack(rows)  # (I, nb)
    t = template[index].repeat_interleave(block, dim=1)  # (I, F)
    return Schedule(t, index, torch.stack(updates), block)


@dataclass
class Window:
    """Latent frames [start, start + frames) of the whole video; the first ``history`` are given."""

    start: int
    frames: int
    history: int


def plan_windows(total: int, base: int, overlap: int, history: int) -> list[Window]:
    """Windows covering ``total`` latent frames of which the first ``history`` are given (a clip's
    tail), at most ``base`` frames each, every window after the first starting from the last
    ``overlap`` frames before it (diffusers' ``long_video_iter`` arithmetic)."""
    if total <= history:
        raise ValueError("nothing to generate")
    first = min(total, base)
    windows = [Window(0, first, history)]
    done = first
    while done < total:
        n = min(total - done + overlap, base)
        windows.append(Window(done - overlap, n, overlap))
        done += n - overlap
    return windows


class UniPCStepper:
    """A block's own copy of the pipeline's scheduler (diffusers keeps one per latent frame; the
    frames of a block always share their history, so one per block steps them identically).

    ``in_place``: SkyReels-V2's loops (the original ``diffusion_forcing_pipeline.py`` and
    diffusers') hand the scheduler a view of the latents and then overwrite that view with the
    result, so the sample UniPC keeps from its first step (for the second step's corrector) is
    the new one; the caller reproduces this by passing its view and assigning into it. Without
    it (Wan's text-to-video pipeline rebinds its latents) the scheduler gets a copy."""

    def __init__(self, template, in_place: bool = False) -> None:
        self.sched = copy.deepcopy(template)
        self.sched.set_timesteps(len(template.timesteps), device=template.timesteps.device)
        self.in_place = in_place

    def step(self, v: torch.Tensor, k: int, x: torch.Tensor, generators=None) -> torch.Tensor:
        """Move x one step using velocity v at the schedule's k-th timestep (0-based)."""
        return self.sched.step(v, self.sched.timesteps[k], x if self.in_place else x.clone(), return_dict=False)[0]


class SelfForcingSchedule:
    """Self-Forcing's few-step sampler (``pipeline/causal_inference.py``): at each listed timestep
    the model's velocity gives x0 = x_t - sigma_t v (in float64, ``_convert_flow_pred_to_x0``);
    x0 is noised afresh to the next listed timestep, and the last x0 is the result. The list
    (``denoising_step_list`` 1000, 750, 500, 250 with ``warp_denoising_step``) indexes the
    1000-step training schedule of ``FlowMatchScheduler(shift=5, sigma_min=0, extra_one_step=True)``
    (``utils/scheduler.py``): sigma = shift * s / (1 + (shift - 1) s), s = linspace(1, 0, 1001)[:-1]."""

    def __init__(self, steps: tuple[int, ...] = (1000, 750, 500, 250), shift: float = 5.0) -> None:
        s = torch.linspace(1.0, 0.0, 1001)[:-1]
        self.sigmas = shift * s / (1 + (shift - 1) * s)  # (1000,) float32
        self.train_t = self.sigmas * 1000
        self.timesteps = self.train_t[[1000 - k for k in steps]]  # (S,) float32

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigmas[torch.argmin((self.train_t - t).abs())]

    def stepper(self) -> SelfForcingStepper:
        return SelfForcingStepper(self)


class SelfForcingStepper:
    def __init__(self, sched: SelfForcingSchedule) -> None:
        self.s = sched

    def step(self, v: torch.Tensor, k: int, x: torch.Tensor, generators=None) -> torch.Tensor:
        t = self.s.timesteps[k]
        x0 = (x.double() - self.s.sigma(t).double() * v.double()).to(v.dtype)
        if k + 1 >= len(self.s.timesteps):
            return x0
        nxt = self.s.sigma(self.s.timesteps[k + 1]).to(x0.dtype)
        noise = torch.cat([torch.randn(x0.shape[1:], generator=g, dtype=x0.dtype).to(x0.device)[None]
                           for g in generators])
        return (1 - nxt) * x0 + nxt * noise
