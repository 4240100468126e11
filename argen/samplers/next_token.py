"""The next-token loop: prefill the prompt into a static KV cache, then decode one token at a
time from it. Batches are left-padded; every row keeps its own positions and generator, so a
batched run gives each row exactly what it would get alone.
"""

from __future__ import annotations

from typing import Callable

import torch

from argen.models.cross_attention import Memory
from argen.models.kv_cache import KVCache
from argen.models.transformer import Transformer
from argen.samplers.processors import SamplingConfig, guide, make_generators, probs_from_logits, sample

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


def prefill(model: Transformer, idx: torch.Tensor, pos: torch.Tensor, cache: KVCache, **cond) -> torch.Tensor:
    """Run the prompt (B, L) through the model into ``cache``; logits of the last position (B, V).
    ``cond``: the model's conditioning keywords (``memory``, ``prefix``), when it has any."""
    return model(idx, pos=pos, cache=cache, num_logits=1, **cond)[:, -1]


def decode_one_token(model: Transformer, tok: torch.Tensor, pos: torch.Tensor, cache: KVCache, **cond) -> torch.Tensor:
    """One decoding step: tokens (B, 1) at positions (B, 1) -> logits (B, V)."""
    return model(tok, pos=pos, cache=cache, **cond)[:, -1]


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
             allowed: AllowedFn | None = None, memory: Memory | None = None,
             prefix: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[list[int]]:
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

    Encoder-decoder models (``model.cfg.cross_attn``) read ``memory`` (:meth:`Transformer.memory`)
    with one row per sequence: the prompts' rows, then, when guided, their unconditional twins'.
    ``prefix`` = (vectors (R, P, C), positions (R, P)) places conditioning vectors before every
    row's prompt (R rows as for ``memory``), left-padded with position -1; a row's prompt
    positions continue after its own prefix, so a row's result does not depend on the others'.
    """
    sampling = sampling or SamplingConfig()
    device = model.embed.weight.device
    b = len(prompts)
    if generators is None and not sampling.greedy:
        generators = make_generators(seed if seed is not None else torch.seed() % 2**31, b, device)
    guided = uncond_prompts is not None and sampling.guided
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
    if window is not None:
        if idx.shape[1] > window:
            raise ValueError(f"the prompt ({idx.shape[1]} tokens) is longer than the window ({window})")
        capacity = min(capacity, window)
    cond = {} if memory is None else {"memory": memory}  # every pass reads the encoder memory
    first = dict(cond)  # the prompt's pass (and, uncached, every pass) also takes the prefix
    if prefix is not None:
        if window is not None:
            raise ValueError("a window cannot slide past conditioning prefix vectors")
        vecs, ppos = prefix[0].to(device), prefix[1].to(device)
        pos = torch.where(pos >= 0, pos + ppos.max(dim=1, keepdim=True).values + 1, pos)
        first["prefix"] = vecs
        capacity += vecs.shape[1]
    cache = model.new_cache(len(prompts), capacity=capacity) if use_cache else None
    step_fn = compiled_decoder() if (compile and use_cache) else decode_one_token
    full_pos = pos if prefix is None else torch.cat([ppos, pos], dim=1)  # (B, P + L)
    if use_cache:
        logits = prefill(model, idx, full_pos, cache, **first)
    else:
        logits = model(idx, pos=full_pos, num_logits=1, **first)[:, -1]
    next_pos = pos[:, -1:] + 1  # (B, 1)
    for step in range(max_new_tokens):
        if streams > 1:
            logits = logits.view(logits.shape[0], streams, -1)  # (B, n_streams, V / n_streams)
        if vocab_limit is not None:
            logits = logits[..., :vocab_limit]
        logits = guide(logits, b, sampling, step / max(1, max_new_tokens - 1), step)  # (B, V)
        if allowed is not None:
            logits = logits.masked_fill(~allowed(step, outputs).to(logits.device), float("-inf"))
        if sampling.greedy and not penalise:
            tok = logits.argmax(-1)  # (B,)
        else:
            tok = sample(probs_from_logits(logits, sampling, None if history is None else history[:b]), generators)
        if forced is not None:
            tok = torch.where(forced[:, step] >= 0, forced[:, step], tok)
        if on_token is not None:
            on_token(tok.masked_fill(done.to(tok.device).view(-1, *[1] * (tok.dim() - 1)), -1))
        tok_cpu = tok.tolist()
        for r in range(b):
            if done[r]:
                continue
            outputs[r].append(tuple(tok_cpu[r]) if streams > 1 else tok_cpu[r])
            if (eos_id is not None and tok_cpu[r] == eos_id) or (stop is not None and stop(r, outputs[r])):
                done[r] = True
        if bool(done.all()) or step == max_new_tokens - 1:
            break  # no forward pass for a token that will not be sampled
        if guided:
            tok = torch.cat([tok, tok])  # the unconditional twins continue with the same tokens
        if penalise:
            history = torch.cat([history, tok[:, None]], dim=1)
        if use_cache:
            if cache.length == cache.capacity:  # only reachable with a window
                next_pos = next_pos - cache.evict(max(1, capacity // 4), 0, model.rope)[:, None]
            logits = step_fn(model, tok[:, None], next_pos, cache, **cond)
        else:
            idx = torch.cat([idx, tok[:, None]], dim=1)
            pos = torch.cat([pos, next_pos], dim=1)
            if window is not None and idx.shape[1] > window:  # nanoGPT's crop (RoPE: relative)
                idx, pos = idx[:, -window:], pos[:, -window:]
            full_pos = pos if prefix is None else torch.cat([ppos, pos], dim=1)
            logits = model(idx, pos=full_pos, num_logits=1, **first)[:, -1]
        next_pos = next_pos + 1
    return outputs
