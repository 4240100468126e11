"""Logits processors as pure functions, and the sampling settings every pipeline shares.

Each processor maps logits (B, V) to logits (B, V) with excluded tokens at ``-inf``; they
compose in the order of :func:`process_logits`. ``probs_from_logits`` turns the result into the
distribution that is sampled (and that speculative decoding must reproduce exactly).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch

from argen.errors import UsageError


@dataclass
class SamplingConfig:
    """Sampling settings; ``temperature == 0`` means greedy (argmax)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0
    cfg_scale: float = 1.0  # classifier-free guidance: 1 = conditional logits only
    # constant: weight cfg_scale throughout; linear: from 1 up to cfg_scale; var: from 1 up to
    # 1 + cfg_scale (VAR's ramp, so VAR's published cfg values apply unchanged)
    cfg_schedule: Literal["constant", "linear", "var"] = "constant"
    cfg_tokens: int | None = None  # guide only the first this many new tokens (LlamaGen's cfg_interval); None: all

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise UsageError(f"--temperature must be 0 or more, got {self.temperature}", hint="0 is greedy decoding")
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"--top-k must be at least 1, got {self.top_k}", hint="leave it out to keep every token")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise UsageError(f"--top-p must be in (0, 1], got {self.top_p}", hint="e.g. --top-p 0.9")
        if self.min_p is not None and not 0 <= self.min_p < 1:
            raise UsageError(f"--min-p must be in [0, 1), got {self.min_p}", hint="e.g. --min-p 0.05")
        if not self.repetition_penalty > 0:
            raise UsageError(f"--repetition-penalty must be above 0, got {self.repetition_penalty}",
                             hint="1.0 disables it; 1.1 to 1.3 is typical")
        if not self.cfg_scale >= 0:
            raise UsageError(f"--cfg must be 0 or more, got {self.cfg_scale}", hint="1 disables guidance")
        if self.cfg_schedule not in ("constant", "linear", "var"):
            raise UsageError(f"unknown CFG schedule {self.cfg_schedule!r}", hint="use constant, linear or var")
        if self.cfg_tokens is not None and self.cfg_tokens < 0:
            raise UsageError(f"--cfg-tokens must be 0 or more, got {self.cfg_tokens}",
                             hint="leave it out to guide every token")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def guided(self) -> bool:
        """Whether the guidance weight differs from 1 anywhere (then the unconditional twins run)."""
        return self.cfg_scale != (0.0 if self.cfg_schedule == "var" else 1.0)

    def to_dict(self) -> dict:
        return asdict(self)


def apply_repetition_penalty(logits: torch.Tensor, history: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty (Keskar et al. 2019): tokens already in ``history`` (B, S), -1 = none, get
    positive logits divided and negative logits multiplied by ``penalty``."""
    if penalty == 1.0 or history.numel() == 0:
        return logits
    b, v = logits.shape
    # padding (-1) goes to an extra column that is dropped, so it cannot mark token 0 as seen
    idx = torch.where(history >= 0, history, torch.full_like(history, v))
    seen = torch.zeros(b, v + 1, dtype=torch.bool, device=logits.device).scatter_(1, idx, True)[:, :v]
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return logits / temperature if temperature not in (0.0, 1.0) else logits


def apply_top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row."""
    if k is None or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def apply_top_p(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al. 2020): the smallest set of most likely tokens whose
    probability reaches ``p``; the token that crosses ``p`` is kept."""
    if p is None or p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    before = probs.cumsum(-1) - probs  # mass strictly before each token
    drop_sorted = before >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def apply_min_p(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Min-p (Nguyen et al. 2024): drop tokens less likely than ``p`` times the top token."""
    if not p:
        return logits
    probs = logits.softmax(-1)
    threshold = p * probs.max(dim=-1, keepdim=True).values
    return logits.masked_fill(probs < threshold, float("-inf"))


def guidance_scale(scale: float, schedule: str, progress: float) -> float:
    """CFG weight at ``progress`` in [0, 1] of the generation: constant, a linear ramp from 1 to
    ``scale``, or VAR's ramp from 1 to ``1 + scale`` (FoundationVision/VAR ``models/var.py``
    mixes ``(1 + t) * cond - t * uncond`` with ``t = cfg * k / (K - 1)`` at scale k of K)."""
    if schedule == "linear":
        return 1.0 + (scale - 1.0) * progress
    if schedule == "var":
        return 1.0 + scale * progress
    return scale


def apply_cfg(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance on logits: ``uncond + scale * (cond - uncond)``."""
    if scale == 1.0:
        return cond
    return uncond + scale * (cond - uncond)


def guide(logits: torch.Tensor, b: int, cfg: SamplingConfig, progress: float, step: int | None = None) -> torch.Tensor:
    """Rows ``b..2b`` of ``logits`` (2B, ..., V), when present, are the unconditional twins of
    rows ``0..b``: combine them by classifier-free guidance at ``progress`` in [0, 1]. From
    ``step`` (0-based index of the sampled token) ``cfg.cfg_tokens`` on, the conditional rows
    are returned unguided."""
    if logits.shape[0] == b:
        return logits
    if cfg.cfg_tokens is not None and step is not None and step >= cfg.cfg_tokens:
        return logits[:b]
    if cfg.cfg_schedule == "var":
        # VAR's own arithmetic, ``(1 + t) * cond - t * uncond`` (FoundationVision/VAR
        # models/var.py, autoregressive_infer_cfg): the same weights as apply_cfg at
        # 1 + t, rounded as the reference rounds them
        t = cfg.cfg_scale * progress
        return (1 + t) * logits[:b].float() - t * logits[b:].float()
    scale = guidance_scale(cfg.cfg_scale, cfg.cfg_schedule, progress)
    return apply_cfg(logits[:b].float(), logits[b:].float(), scale)


def process_logits(logits: torch.Tensor, cfg: SamplingConfig, history: torch.Tensor | None = None) -> torch.Tensor:
    """All processors in order: repetition penalty, temperature, top-k, top-p, min-p.

    logits (B, V) are converted to float32 first; greedy settings skip the filters (argmax
    is unchanged by them).
    """
    logits = logits.float()
    if history is not None:
        logits = apply_repetition_penalty(logits, history, cfg.repetition_penalty)
    if cfg.greedy:
        return logits
    logits = apply_temperature(logits, cfg.temperature)
    logits = apply_top_k(logits, cfg.top_k)
    logits = apply_top_p(logits, cfg.top_p)
    return apply_min_p(logits, cfg.min_p)


def probs_from_logits(logits: torch.Tensor, cfg: SamplingConfig, history: torch.Tensor | None = None) -> torch.Tensor:
    """The sampling distribution (B, V): softmax of processed logits, one-hot argmax when greedy."""
    processed = process_logits(logits, cfg, history)
    if cfg.greedy:
        return torch.nn.functional.one_hot(processed.argmax(-1), processed.shape[-1]).float()
    return processed.softmax(-1)


def sample(probs: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
    """Draw one token per row of ``probs`` (B, V); returns (B,).

    Uses ``argmax(probs / E)`` with ``E ~ Exp(1)``, which samples exactly from ``probs`` without
    a host sync. Row ``b`` draws its noise from ``generators[b]``, so a row's sample does not
    depend on the other rows in the batch (batched output equals one-by-one output).
    """
    if generators is None:
        noise = torch.empty_like(probs).exponential_(1)
    else:
        noise = torch.stack([torch.empty_like(probs[0]).exponential_(1, generator=g) for g in generators])
    noise.clamp_(min=1e-30)  # an exact 0 would turn a zero-probability token into 0/0
    return torch.argmax(probs / noise, dim=-1)


def make_generators(seed: int, n: int, device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per sample: sample ``i`` uses seed ``seed + i``."""
    return [torch.Generator(device=device).manual_seed(seed + i) for i in range(n)]
