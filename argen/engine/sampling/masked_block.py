"""The masked block-diffusion loop for tokens: blocks left to right, the tokens inside a block
denoised in parallel from a mask token.

Every block-diffusion text family (BD3-LM and MDLM, Fast-dLLM v2, argen's own) is a
:class:`Denoiser`: a block-causal transformer that returns logits for the positions it is fed.
Blocks lie on a fixed grid of absolute positions (block ``k`` holds positions ``k*bs .. k*bs+bs-1``),
as every family trains them; a prompt fills its whole blocks and the start of the first
generated block. Finished blocks live in argen's static :class:`KVCache`: a block's keys are
written once, by the first pass of the block after it (the finished block and the new, masked
block travel in one forward pass; the masked block's keys are dropped again after every pass).
So a block costs exactly its denoising passes, and a prompt costs nothing extra.

Within a block each pass predicts every masked position; which predictions are committed:

- ``confidence`` (Fast-dLLM, Wu et al. 2025, and Fast-dLLM v2's ``generate`` in the remote code of
  Efficient-Large-Model/Fast_dLLM_v2_*): every masked position whose chosen token has probability
  ``>= threshold`` is committed, and at least one (the most confident) per pass; with ``steps``,
  at least ``ceil(masked / passes left)`` so the block ends within ``steps`` passes (a block the
  prompt partly fills, within proportionally fewer: :func:`pass_budget`). With
  ``sub_block``, only the first sub-block that still has masks is decoded (Fast-dLLM v2's small
  blocks).
- ``first-hitting`` (BD3-LM's sampler, kuleshov-group/bd3lms ``diffusion.py``
  ``_ddpm_caching_update`` with ``sampling.first_hitting``, after Zheng et al. 2025): one masked
  position, drawn uniformly, is committed per pass with a token drawn from the model's
  distribution; exact for a model without time conditioning, one pass per token.

Tokens are drawn from the processed distribution (temperature, top-k, top-p as in
:mod:`argen.engine.sampling.processors`, the mask token never); a confidence is that distribution's
probability of the drawn token (greedy: the softmax probability of the argmax). Row ``b`` draws
with its own generator, so a row's tokens do not depend on the rest of the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Protocol

import torch

from argen.engine.kv_cache import KVCache
from argen.engine.sampling.processors import SamplingConfig, make_generators, process_logits
from argen.engine.sampling.step import left_pad
from argen.errors import UsageError

OnBlock = Callable[[int, list[list[int]]], None]  # (block index, each row's new tokens of that block)
SAMPLERS = ("confidence", "first-hitting")


class Denoiser(Protocol):
    """What the loop needs from a model family."""

    mask_id: int  # the id of the mask token (never sampled)
    block_size: int  # the block size the model was trained with
    token_shift: bool  # True: the output at position i predicts token i + 1 (Fast-dLLM v2)
    max_len: int  # the longest sequence the model takes (prompt + new tokens)

    def __call__(self, ids: torch.Tensor, pos: torch.Tensor, cache: KVCache | None, out: slice) -> torch.Tensor:
        """Ids and positions (B, T), -1 = padding -> logits (B, len(out), V) of the positions
        ``out``; with a cache, the T tokens' keys are written after its used slots."""
        ...

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        ...


@dataclass
class BlockSettings:
    """How blocks are decoded. ``steps``: the most passes a block may take (None: no limit, at
    least one token per pass); ``threshold`` in (0, 1]; ``sub_block``: Fast-dLLM v2's small
    blocks (must divide the block size)."""

    block_size: int
    steps: int | None = None
    threshold: float = 0.9
    sampler: Literal["confidence", "first-hitting"] = "confidence"
    sub_block: int | None = None

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise UsageError(f"--block-size must be at least 1, got {self.block_size}", hint="e.g. --block-size 8")
        if self.steps is not None and self.steps < 1:
            raise UsageError(f"--steps must be at least 1, got {self.steps}", hint="e.g. --steps 4 (passes per block)")
        if not 0 < self.threshold <= 1:
            raise UsageError(f"--threshold must be in (0, 1], got {self.threshold}",
                             hint="a token is committed once its probability reaches it; e.g. 0.9")
        if self.sampler not in SAMPLERS:
            raise UsageError(f"unknown block sampler {self.sampler!r}", hint=f"use one of {', '.join(SAMPLERS)}")
        if self.sub_block is not None and (self.sub_block < 1 or self.block_size % self.sub_block):
            raise UsageError(f"the sub-block size ({self.sub_block}) must divide the block size ({self.block_size})",
                             hint="e.g. block 32 with sub-blocks of 8")


def _draw(logits: torch.Tensor, sampling: SamplingConfig, mask_id: int, generators: list[torch.Generator] | None,
          spans: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, L, V) of block positions ``a .. a + L - 1`` -> drawn tokens (B, L) and their
    probabilities (B, L). Row ``r`` draws from its generator for its own span (relative to the
    logits) only, so its draws do not depend on the rest of the batch."""
    b, n, v = logits.shape
    logits = logits.float()
    logits[..., mask_id] = float("-inf")
    if sampling.greedy:
        probs = logits.softmax(-1)
        tok = probs.argmax(-1)
    else:
        probs = process_logits(logits.reshape(b * n, v), sampling).softmax(-1).view(b, n, v)
        if generators is None:
            noise = torch.empty_like(probs).exponential_(1)
        else:  # argmax(p / E), E ~ Exp(1), draws from p; each row from its own generator
            noise = torch.ones_like(probs)
            for r, (g, (a, z)) in enumerate(zip(generators, spans)):
                if z > a:
                    noise[r, a:z].exponential_(1, generator=g)
        tok = (probs / noise.clamp_(min=1e-30)).argmax(-1)
    return tok, probs.gather(-1, tok[..., None])[..., 0]


def pass_budget(settings: BlockSettings, masked: int) -> int | None:
    """The most passes a block with ``masked`` positions to fill may take: ``steps`` for a whole
    block, proportionally fewer for one the prompt partly fills (``steps * masked // block_size``,
    at least one), so that a prompt's tail in the first block buys that block no extra passes
    (a block costs at most ``steps / block_size`` passes per token it writes, once it writes at
    least ``block_size / steps`` tokens)."""
    if settings.steps is None:
        return None
    return max(1, settings.steps * masked // settings.block_size)


def _choose(masked: torch.Tensor, conf: torch.Tensor, settings: BlockSettings, passes_done: int,
            generators: list[torch.Generator] | None, budget: torch.Tensor | None = None) -> torch.Tensor:
    """Which masked positions (B, L) to commit this pass, from their confidences (B, L);
    ``budget`` (B,): each row's most passes for this block (:func:`pass_budget`)."""
    b, n = masked.shape
    if settings.sampler == "first-hitting":
        pick = torch.zeros_like(masked)
        for r in range(b):
            idx = masked[r].nonzero()[:, 0]
            if len(idx):
                g = generators[r] if generators is not None else None
                pick[r, idx[torch.randint(len(idx), (1,), generator=g, device=idx.device)]] = True
        return pick
    active = masked
    if settings.sub_block:  # only the first sub-block that still has masks
        sb = settings.sub_block
        has = masked.view(b, n // sb, sb).any(-1)  # (B, n_sub)
        first = has.float().argmax(-1)  # (B,)
        in_first = (torch.arange(n, device=masked.device) // sb)[None] == first[:, None]
        active = masked & in_first
    score = conf.masked_fill(~active, -1.0)
    pick = active & (conf >= settings.threshold)
    left = masked.sum(-1)  # (B,) masks left in the block
    if budget is not None:
        need = torch.ceil(left / (budget - passes_done).clamp(min=1)).long().clamp(min=1)
    else:
        need = torch.ones_like(left)
    need = torch.minimum(need, active.sum(-1))
    ranks = score.argsort(dim=-1, descending=True, stable=True).argsort(dim=-1, stable=True)  # (B, L): 0 = most confident
    return pick | (active & (ranks < need[:, None]))


def _spans(masked: torch.Tensor, live: list[bool], settings: BlockSettings, from_start: bool) -> list[tuple[int, int]]:
    """Each live row's span [a, z) of block positions a pass may commit (its masked positions,
    within its first sub-block that has any, Fast-dLLM v2's small blocks); (0, 0) for others.
    ``from_start``: every span starts at 0 (a shifted block's first pass)."""
    m = masked
    if settings.sub_block and settings.sampler == "confidence":
        b, n = m.shape
        sb = settings.sub_block
        first = m.view(b, n // sb, sb).any(-1).float().argmax(-1)  # (B,) first sub-block with masks
        m = m & ((torch.arange(n, device=m.device) // sb)[None] == first[:, None])
    spans = []
    for row, ok in zip(m, live):
        idx = row.nonzero()[:, 0]
        spans.append((0 if from_start else int(idx[0]), int(idx[-1]) + 1) if ok and len(idx) else (0, 0))
    return spans


@torch.inference_mode()
def generate_blocks(model: Denoiser, prompts: list[list[int]], max_new_tokens: int, settings: BlockSettings,
                    sampling: SamplingConfig | None = None, *, seed: int | None = None,
                    generators: list[torch.Generator] | None = None, eos_id: int | None = None,
                    on_block: OnBlock | None = None, use_cache: bool = True,
                    device: torch.device | str = "cpu") -> tuple[list[list[int]], list[int]]:
    """Generate ``max_new_tokens`` after each prompt, block by block.

    Returns each row's new tokens (cut after ``eos_id``, which is kept) and each row's number of
    forward passes (the passes until its last block was done: what the row would cost alone).
    ``on_block(k, tokens)`` is called after every finished block with each row's new tokens of
    it (streaming). ``use_cache=False`` recomputes the whole sequence at every pass: the
    reference the cached path is tested against. Row ``b`` samples with ``generators[b]`` or
    seed ``seed + b``.
    """
    sampling = sampling or SamplingConfig()
    if settings.block_size != model.block_size:
        raise UsageError(f"this model was trained with blocks of {model.block_size} tokens, not {settings.block_size}",
                         hint=f"use --block-size {model.block_size}")
    if not prompts or any(len(p) == 0 for p in prompts):
        raise UsageError("every prompt needs at least one token", hint="give a non-empty prompt")
    bsz, bs, mask = len(prompts), settings.block_size, model.mask_id
    if generators is None and (not sampling.greedy or settings.sampler == "first-hitting"):
        generators = make_generators(seed if seed is not None else torch.seed() % 2**31, bsz, device)
    longest = max(len(p) for p in prompts)
    needed = [-(-(len(p) % bs + max_new_tokens) // bs) for p in prompts]  # blocks each row needs
    n_blocks = max(needed)
    total = max(len(p) // bs * bs for p in prompts) + n_blocks * bs
    if max(len(p) // bs * bs for p in prompts) + n_blocks * bs > model.max_len:
        raise UsageError(f"prompt ({longest} tokens) and {max_new_tokens} new tokens, in whole blocks, exceed the "
                         f"model's context of {model.max_len}", hint="ask for fewer tokens or give a shorter prompt")
    seqs = [list(p) for p in prompts]  # every row's tokens so far (prompt, then finished blocks)
    starts = [len(p) // bs * bs for p in prompts]  # first position of each row's current block
    pending = [list(p[: s]) for p, s in zip(prompts, starts)]  # finished tokens not yet in the cache
    pending_at = [0] * bsz
    cache = model.new_cache(bsz, total) if use_cache else None
    passes = [0] * bsz
    done = [False] * bsz  # the row has met its end token
    shift = model.token_shift
    for k in range(n_blocks):
        known = [s[st:] for s, st in zip(seqs, starts)]  # the prompt's tail in the first block, else empty
        block = torch.full((bsz, bs), mask, dtype=torch.long)
        for b, kn in enumerate(known):
            block[b, : len(kn)] = torch.tensor(kn, dtype=torch.long)
        block = block.to(device)
        bpos = (torch.tensor(starts)[:, None] + torch.arange(bs)[None]).to(device)  # (B, bs)
        row_done = [d or k >= need for d, need in zip(done, needed)]  # rows with nothing left to do here
        budget = None if settings.steps is None else torch.tensor(
            [pass_budget(settings, bs - len(kn)) for kn in known], device=device)
        first_pass, cached_logits, steps_taken = True, None, 0
        while not all(row_done):
            masked = block == mask  # (B, bs)
            spans = _spans(masked, [not d for d in row_done], settings, shift and first_pass)
            if cached_logits is None:
                live = [sp for sp in spans if sp[1] > sp[0]]  # the positions worth logits
                a, z = min(sp[0] for sp in live), max(sp[1] for sp in live)
                if use_cache:
                    before, before_pos = left_pad(pending, 0, pending_at)
                else:
                    before, before_pos = left_pad([s[:st] for s, st in zip(seqs, starts)], 0, [0] * bsz)
                ids = torch.cat([before.to(device), block], 1)  # (B, P + bs)
                pos = torch.cat([before_pos.to(device), bpos], 1)
                p = before.shape[1]
                # position j is predicted by the output at j (or, shifted, at j - 1; the block's
                # first token, always known after the first pass, gets its own output's placeholder)
                lo, hi = (p + a - 1, p + z - 1) if shift else (p + a, p + z)
                base = cache.length if use_cache else 0
                logits = model(ids, pos, cache, slice(max(lo, 0), hi))  # (B, z - a, V), or one less
                if lo < 0:
                    logits = torch.cat([logits[:, :1], logits], 1)
                if use_cache:
                    cache.truncate(base + before.shape[1])  # keep the finished tokens' keys, drop the block's
                    pending, pending_at = [[] for _ in range(bsz)], list(starts)
                for b in range(bsz):
                    if not row_done[b]:
                        passes[b] += 1
                cached_logits = (a, logits)  # what predicts block positions a .. z - 1
            a, logits = cached_logits
            tok_w, conf_w = _draw(logits, sampling, mask, generators, [(x - a, y - a) if y > x else (0, 0)
                                                                      for x, y in spans])
            tok, conf = block.clone(), torch.full(block.shape, -1.0, device=device)
            tok[:, a:a + tok_w.shape[1]], conf[:, a:a + tok_w.shape[1]] = tok_w, conf_w
            pick = _choose(masked, conf, settings, steps_taken, generators, budget)
            if shift and first_pass:
                # a block's first token is predicted from the finished tokens alone (Fast-dLLM v2's
                # commit pass); the block's other predictions were made with it masked, so they wait
                lead = masked[:, 0]  # (B,)
                only_first = torch.zeros_like(masked)
                only_first[:, 0] = True
                pick = torch.where(lead[:, None], only_first, pick)
            pick &= ~torch.tensor(row_done, device=device)[:, None]
            block = torch.where(pick, tok, block)
            first_pass = False
            steps_taken += 1
            if bool(pick.any()):
                cached_logits = None  # the block changed: the next pass sees it
            for b in range(bsz):
                if not row_done[b] and not bool((block[b] == mask).any()):
                    row_done[b] = True
        new = []
        for b in range(bsz):
            fresh = block[b, len(known[b]):].tolist()
            finished = done[b] or k >= needed[b]
            new.append([] if finished else fresh)
            if not finished:
                seqs[b] += fresh
                if eos_id is not None and eos_id in fresh:
                    done[b] = True
            pending[b] += known[b] + fresh
            starts[b] += bs
        if on_block is not None:
            on_block(k, new)
        if all(done):
            break
    out = []
    for b, p in enumerate(prompts):
        gen = seqs[b][len(p):]
        if eos_id is not None and eos_id in gen:
            gen = gen[: gen.index(eos_id) + 1]
        out.append(gen[:max_new_tokens])
    return out, passes


def passes_per_token(tokens: list[list[int]], passes: list[int]) -> float:
    """Forward passes per generated token over a batch (each row's passes over its tokens)."""
    n = sum(len(t) for t in tokens)
    return sum(passes) / n if n else math.nan
