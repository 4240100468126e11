"""The next-token loop: prefill the prompt into a static KV cache, then decode one token at a
time from it. Batches are left-padded; every row keeps its own positions and generator, so a
batched run gives each row exactly what it would get alone.
"""

from __future__ import annotations

from typing import Callable

import torch

from argen.engine.kv_cache import KVCache
from argen.engine.sampling.processors import SamplingConfig, guide, make_generators, probs_from_logits, sample
from argen.engine.transformer import Transformer

OnToken = Callable[[torch.Tensor], None]  # called with the new tokens (B,) after every step
StopFn = Callable[[int, list[int]], bool]  # (row, new tokens so far) -> stop this row?
# (step, every row's new tokens so far) -> (B, V) bool: the ids each row may sample (a grammar)
AllowedFn = Callable[[int, list[list[int]]], torch.Tensor]


def left_pad(prompts: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, L) left-padded with ``pad_id``, and positions (B, L) with -1 on padding.
    Prompts of parallel streams (each position a tuple of n ids) give ids (B, L, n)."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    width = max(len(p) for p in prompts)
    first = prompts[0][0]
    streams = (len(first),) if isinstance(first, (tuple, list)) else ()
    idx = torch.full((len(prompts), width, *streams), pad_id, dtype=torch.long)
    pos = torch.full((len(prompts), width), -1, dtype=torch.long)
    for b, p in enumerate(prompts):
        idx[b, width - len(p):] = torch.tensor(p, dtype=torch.long)
        pos[b, width - len(p):] = torch.arange(len(p))
    return idx, pos


def prefill(model: Transformer, idx: torch.Tensor, pos: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Run the prompt (B, L) through the model into ``cache``; logits of the last position (B, V)."""
    return model(idx, pos=pos, cache=cache, num_logits=1)[:, -1]


def decode_one_token(model: Transformer, tok: torch.Tensor, pos: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """One decoding step: tokens (B, 1) at positions (B, 1) -> logits (B, V)."""
    return model(tok, pos=pos, cache=cache)[:, -1]


def compiled_decoder(fn=decode_one_token):
    """``decode_one_token`` under torch.compile; lengths are symbolic so it compiles once."""
    return torch.compile(fn, dynamic=True)


@torch.inference_mode()
def generate(model: Transformer, prompts: list[list[int]], max_new_tokens: int,
             sampling: SamplingConfig | None = None, *, seed: int | None = None,
             generators: list[torch.Generator] | None = None, eos_id: int | None = None,
             stop: StopFn | None = None, on_token: OnToken | None = None,
             use_cache: bool = True, compile: bool = False, pad_id: int = 0,
             window: int | None = None, uncond_prompts: list[list[int]] | None = None,
             vocab_limit: int | None = None, forced: torch.Tensor | None = None,
             allowed: AllowedFn | None = None, compact: bool = False,
             crop: bool = False) -> list[list[int]]:
    """Sample up to ``max_new_tokens`` after each prompt; returns the new tokens of each row.

    A row ends at ``eos_id`` (kept in its output) or when ``stop(row, tokens)`` says so.
    ``use_cache=False`` recomputes the whole sequence every step (the reference the cached
    path is tested and benchmarked against). Row ``b`` samples with ``generators[b]``, or with
    seed ``seed + b``. With ``window`` (a RoPE model's context), a generation longer than the
    window keeps going: the oldest quarter of the cache is evicted and positions re-indexed.

    Conditional models: ``uncond_prompts`` (one per row) enable classifier-free guidance with
    ``sampling.cfg_scale`` (the unconditional rows run in the same batch); ``vocab_limit``
    samples only ids below it; ``forced`` (B, max_new_tokens) teacher-forces every entry
    that is not -1 (inpainting) instead of sampling it. ``allowed`` masks, after guidance and
    before sampling, every id it marks False (a constrained grammar, e.g. meshes); its (B, V)
    must cover the logits' width after ``vocab_limit`` and allow at least one id per row.

    Parallel streams (``model.cfg.n_streams`` > 1, e.g. audio codebooks): prompts hold tuples
    of one id per stream, each step samples every stream at once (tokens (B, n_streams),
    returned as tuples), ``vocab_limit`` applies within each stream and ``forced`` is
    (B, max_new_tokens, n_streams) (the delay pattern's fixed positions).

    ``compact``: finished rows leave the batch (and the cache) once they are an eighth of it,
    so a batch of rows of unequal lengths decodes at the cost of the rows still running; each
    row's output is unchanged. Until it leaves, a finished row is fed at its last position, so
    rows may stop at different lengths right at a learned position table's end. Not with
    guidance or ``forced``.

    ``crop`` (with ``window``, for learned absolute positions, e.g. nanoGPT/CrystaLLM): once a
    row is longer than the window, every step reads its last ``window`` tokens at positions
    0..window-1, as nanoGPT's ``generate`` crops ``idx[:, -block_size:]``. The window then moves
    by one token a step and every token's position embedding changes with it, so the keys and
    values of every layer change: no cache entry survives a crop (eviction cannot express it,
    unlike RoPE's relative positions), and each step past the window recomputes the window.
    Up to the window the cache is used as usual; prompts may be longer than the window.
    """
    sampling = sampling or SamplingConfig()
    device = model.embed.weight.device
    b = len(prompts)
    if generators is None and not sampling.greedy:
        generators = make_generators(seed if seed is not None else torch.seed() % 2**31, b, device)
    guided = uncond_prompts is not None and sampling.guided
    if compact and (guided or forced is not None):
        raise ValueError("compact is for unguided, unforced sampling")
    if crop and (window is None or guided or model.cfg.n_streams > 1):
        raise ValueError("crop needs a window, one stream and no guidance")
    rows = list(range(b))  # the original index of each row still in the batch
    if guided:
        prompts = list(prompts) + list(uncond_prompts)  # rows b.. are the unconditional twins
    idx, pos = left_pad(prompts, pad_id)
    idx, pos = idx.to(device), pos.to(device)
    penalise = sampling.repetition_penalty != 1.0
    streams = model.cfg.n_streams  # > 1: every step samples one token per stream, (B, n_streams)
    if penalise and streams > 1:
        raise ValueError("the repetition penalty is for single-stream models")
    history = idx.masked_fill(pos < 0, -1) if penalise else None  # (B, L) for the repetition penalty
    if forced is not None:
        forced = forced.to(device)
    outputs: list[list[int]] = [[] for _ in range(b)]
    done = torch.zeros(b, dtype=torch.bool)
    if max_new_tokens <= 0:
        return outputs
    capacity = idx.shape[1] + max_new_tokens
    # recompute each row's last window from position 0 (uncached crop: every step)
    cropping = crop and (idx.shape[1] > window or not use_cache)
    if window is not None:
        if idx.shape[1] > window and not crop:
            raise ValueError(f"the prompt ({idx.shape[1]} tokens) is longer than the window ({window})")
        capacity = min(capacity, window)
    use_cache = use_cache and not cropping
    cache = model.new_cache(len(prompts), capacity=capacity) if use_cache else None
    step_fn = compiled_decoder() if (compile and use_cache) else decode_one_token
    if cropping:
        logits = _window_logits(model, prompts, outputs, rows, window, pad_id, device)
    elif use_cache:
        logits = prefill(model, idx, pos, cache)
    else:
        logits = model(idx, pos=pos, num_logits=1)[:, -1]
    next_pos = pos[:, -1:] + 1  # (B, 1)
    for step in range(max_new_tokens):
        if streams > 1:
            logits = logits.view(logits.shape[0], streams, -1)  # (B, n_streams, V / n_streams)
        if vocab_limit is not None:
            logits = logits[..., :vocab_limit]
        nb = len(rows)  # rows in the batch (b unless compacted)
        logits = guide(logits, nb, sampling, step / max(1, max_new_tokens - 1), step)  # (B, V)
        if allowed is not None:
            mask = allowed(step, outputs).to(logits.device)
            logits = logits.masked_fill(~(mask[rows] if compact else mask), float("-inf"))
        if sampling.greedy and not penalise:
            tok = logits.argmax(-1)  # (B,)
        else:
            tok = sample(probs_from_logits(logits, sampling, None if history is None else history[:nb]), generators)
        if forced is not None:
            tok = torch.where(forced[:, step] >= 0, forced[:, step], tok)
        if on_token is not None:
            shown = tok.masked_fill(done[rows].to(tok.device).view(-1, *[1] * (tok.dim() - 1)), -1)
            if compact:  # callers see every original row; rows that left the batch read -1
                shown = torch.full((b, *tok.shape[1:]), -1, dtype=tok.dtype, device=tok.device).index_copy(
                    0, torch.tensor(rows, device=tok.device), shown)
            on_token(shown)
        tok_cpu = tok.tolist()
        for j, r in enumerate(rows):
            if done[r]:
                continue
            outputs[r].append(tuple(tok_cpu[j]) if streams > 1 else tok_cpu[j])
            if (eos_id is not None and tok_cpu[j] == eos_id) or (stop is not None and stop(r, outputs[r])):
                done[r] = True
        if bool(done.all()) or step == max_new_tokens - 1:
            break  # no forward pass for a token that will not be sampled
        if compact and 8 * int(done[rows].sum()) >= nb:  # drop finished rows (a cache copy, so not every step)
            keep = [j for j, r in enumerate(rows) if not done[r]]
            sel = torch.tensor(keep, device=device)
            rows = [rows[j] for j in keep]
            tok, next_pos = tok[sel], next_pos[sel]
            if generators is not None:
                generators = [generators[j] for j in keep]
            if history is not None:
                history = history[sel]
            if cache is not None:
                cache.keep_rows(sel)
            if not use_cache and not cropping:
                idx, pos = idx[sel], pos[sel]
        if guided:
            tok = torch.cat([tok, tok])  # the unconditional twins continue with the same tokens
        if penalise:
            history = torch.cat([history, tok[:, None]], dim=1)
        if use_cache and crop and cache.length == cache.capacity:  # the window is full: crop from now on
            use_cache, cropping, cache = False, True, None
        if cropping:
            logits = _window_logits(model, prompts, outputs, rows, window, pad_id, device)
        elif use_cache:
            if cache.length == cache.capacity:  # only reachable with a window
                next_pos = next_pos - cache.evict(max(1, capacity // 4), 0, model.rope)[:, None]
            logits = step_fn(model, tok[:, None], next_pos, cache)
        else:
            idx = torch.cat([idx, tok[:, None]], dim=1)
            pos = torch.cat([pos, next_pos], dim=1)
            if window is not None and idx.shape[1] > window:  # nanoGPT's crop (RoPE: relative)
                idx, pos = idx[:, -window:], pos[:, -window:]
            logits = model(idx, pos=pos, num_logits=1)[:, -1]
        if compact:  # a finished row still in the batch stays at its last position (inside a learned table)
            next_pos = next_pos + (~done[rows]).to(next_pos.device, torch.long)[:, None]
        else:
            next_pos = next_pos + 1
    return outputs


def _window_logits(model: Transformer, prompts: list[list[int]], outputs: list[list[int]], rows: list[int],
                   window: int, pad_id: int, device) -> torch.Tensor:
    """Next-token logits (R, V) of each row in ``rows`` from its last ``window`` tokens, read at
    positions 0.. (nanoGPT's crop of ``idx[:, -block_size:]``), without a cache."""
    idx, pos = left_pad([(prompts[r] + outputs[r])[-window:] for r in rows], pad_id)  # (R, <=window)
    return model(idx.to(device), pos=pos.to(device), num_logits=1)[:, -1]
