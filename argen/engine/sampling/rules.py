"""Token rules: what a modality adds to a decoding step, each a small object the one loop runs.

The loop turns the model's logits into tokens in one order: the rules' ``logits`` hooks in the
order given (a vocabulary limit first, then classifier-free guidance, then grammar masks), the
sampling processors (argen/engine/sampling/processors.py), the draw, then the rules' ``tokens``
hooks (teacher-forced positions). Rules see a :class:`Step`: the step index, the generation's
progress, the rows still in the batch (their original indices) and every row's tokens so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from argen.engine.sampling.processors import SamplingConfig, guidance_scale, guide

# (step, every row's new tokens so far) -> (B, V) bool: the ids each row may sample (a grammar)
AllowedFn = Callable[[int, list[list[int]]], torch.Tensor]


@dataclass
class Step:
    index: int  # 0-based index of the token being chosen
    progress: float  # index / (max_new_tokens - 1), in [0, 1]
    rows: list[int]  # original index of each row in the batch
    outputs: list[list[int]]  # every original row's new tokens so far
    sampling: SamplingConfig
    compacted: bool = False  # rows may have left the batch (rows is then a subset)


class Rule:
    """A no-op rule: subclasses override one or both hooks."""

    def logits(self, logits: torch.Tensor, step: Step) -> torch.Tensor:
        return logits

    def tokens(self, tok: torch.Tensor, step: Step) -> torch.Tensor:
        return tok


class VocabLimit(Rule):
    """Sample only ids below ``n`` (an image model's codebook, a mesh vocabulary); with parallel
    streams, within each stream."""

    def __init__(self, n: int) -> None:
        self.n = n

    def logits(self, logits: torch.Tensor, step: Step) -> torch.Tensor:
        return logits[..., :self.n]


class Guidance(Rule):
    """Classifier-free guidance by batch doubling: the unconditional twin of each row (its
    prompt in ``uncond_prompts``) runs in the same batch, rows b.. of the logits; the two are
    combined with ``sampling.cfg_scale`` on its schedule. Inactive when the weight is 1 everywhere."""

    def __init__(self, uncond_prompts: list[list[int]]) -> None:
        self.uncond_prompts = uncond_prompts

    def logits(self, logits: torch.Tensor, step: Step) -> torch.Tensor:
        return guide(logits, len(step.rows), step.sampling, step.progress, step.index)

    def parts(self, logits: torch.Tensor, step: Step) -> tuple[torch.Tensor, torch.Tensor | None, float]:
        """What :meth:`logits` combines, left for a fused kernel to combine: the conditional rows,
        the unconditional twins (None when this step is unguided) and the weight ``s`` of
        ``uncond + s * (cond - uncond)``; VAR's ``(1 + t) * cond - t * uncond`` is ``s = 1 + t``."""
        b, cfg = len(step.rows), step.sampling
        if logits.shape[0] == b or (cfg.cfg_tokens is not None and step.index >= cfg.cfg_tokens):
            return logits[:b], None, 1.0
        if cfg.cfg_schedule == "var":
            return logits[:b], logits[b:], 1.0 + cfg.cfg_scale * step.progress
        return logits[:b], logits[b:], guidance_scale(cfg.cfg_scale, cfg.cfg_schedule, step.progress)


class Grammar(Rule):
    """Mask every id ``allowed(step, outputs)`` marks False (after guidance, before sampling); its
    (B, V) covers the logits' width after a vocabulary limit and allows at least one id per row."""

    def __init__(self, allowed: AllowedFn) -> None:
        self.allowed = allowed

    def logits(self, logits: torch.Tensor, step: Step) -> torch.Tensor:
        mask = self.allowed(step.index, step.outputs).to(logits.device)
        if step.compacted:
            mask = mask[step.rows]
        return logits.masked_fill(~mask, float("-inf"))


class Forced(Rule):
    """Teacher-force every entry of ``tokens`` (B, max_new_tokens[, n_streams]) that is not -1
    (inpainting, the delay pattern's fixed slots) instead of the sampled token."""

    def __init__(self, tokens: torch.Tensor) -> None:
        self.forced = tokens

    def tokens(self, tok: torch.Tensor, step: Step) -> torch.Tensor:
        f = self.forced[:, step.index].to(tok.device)
        return torch.where(f >= 0, f, tok)


def token_rules(vocab_limit: int | None = None, uncond_prompts: list[list[int]] | None = None,
                allowed: AllowedFn | None = None, forced: torch.Tensor | None = None) -> list[Rule]:
    """The usual rules in the loop's order, from whichever of them a caller has."""
    rules: list[Rule] = []
    if vocab_limit is not None:
        rules.append(VocabLimit(vocab_limit))
    if uncond_prompts is not None:
        rules.append(Guidance(uncond_prompts))
    if allowed is not None:
        rules.append(Grammar(allowed))
    if forced is not None:
        rules.append(Forced(forced))
    return rules
