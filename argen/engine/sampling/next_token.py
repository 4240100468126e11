"""The next-token loop: prefill the prompts into a static KV cache, then decode one token at a
time from it, each through the one step of argen/engine/sampling/step.py. Batches are
left-padded; every row keeps its own positions and generator, so a batched run gives each row
exactly what it would get alone. What a modality adds (a vocabulary limit, guidance, a grammar,
forced tokens) comes as rules (argen/engine/sampling/rules.py); what happens past the context, as
a window (argen/engine/sampling/window.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from argen.engine.kernels.fused_sampling import use_fused
from argen.engine.sampling.conditioning import Conditioning
from argen.engine.sampling.processors import SamplingConfig, make_generators
from argen.engine.sampling.rules import Guidance, Rule, Step
from argen.engine.sampling.step import choose_tokens, compiled_decoder, decode_one_token, graph_decoder, left_pad, prefill, use_graphs  # noqa: F401
from argen.engine.sampling.window import ContextWindow
from argen.engine.transformer import Transformer

OnToken = Callable[[torch.Tensor], None]  # called with the new tokens (B,) after every step
StopFn = Callable[[int, list[int]], bool]  # (row, new tokens so far) -> stop this row?


@torch.inference_mode()
def generate(model: Transformer, prompts: list[list[int]], max_new_tokens: int,
             sampling: SamplingConfig | None = None, *, rules: Sequence[Rule] = (),
             generators: list[torch.Generator] | None = None, seed: int | None = None,
             eos_id: int | None = None, stop: StopFn | None = None, on_token: OnToken | None = None,
             use_cache: bool = True, compile: bool = False, window: ContextWindow | None = None,
             compact: bool = False, condition: Conditioning | None = None) -> list[list[int]]:
    """Sample up to ``max_new_tokens`` after each prompt; returns the new tokens of each row.

    A row ends at ``eos_id`` (kept in its output) or when ``stop(row, tokens)`` says so. Row ``b``
    samples with ``generators[b]``, or with seed ``seed + b``. ``use_cache=False`` recomputes the
    whole sequence every step (the reference the cached path is tested and benchmarked against).
    ``rules`` shape each step (argen/engine/sampling/rules.py; a :class:`Guidance` rule runs its
    unconditional twins in the same batch). ``window``: past the model's context a RoPE model
    slides its cache, a learned-position model crops (see :class:`ContextWindow`).

    Parallel streams (``model.cfg.n_streams`` > 1, e.g. audio codebooks): prompts hold tuples of
    one id per stream and each step samples every stream at once (returned as tuples).

    ``compact``: finished rows leave the batch (and the cache) once they are an eighth of it, so
    a batch of rows of unequal lengths decodes at the cost of the rows still running; each row's
    output is unchanged. Until it leaves, a finished row is fed at its last position. Not with
    guidance or forced tokens.

    ``condition``: what the model reads besides tokens (an encoder-decoder's cross-attention
    memory, prefix vectors), one row per sequence of the batch, guidance twins included (see
    :class:`Conditioning`); passed to every forward pass.
    """
    sampling = sampling or SamplingConfig()
    device = model.embed.weight.device
    b, streams = len(prompts), model.cfg.n_streams
    if generators is None and not sampling.greedy:
        generators = make_generators(seed if seed is not None else torch.seed() % 2**31, b, device)
    guidance = next((r for r in rules if isinstance(r, Guidance)), None)
    guided = guidance is not None and sampling.guided
    crop = window is not None and window.crop
    if compact and (guided or any(type(r).__name__ == "Forced" for r in rules)):
        raise ValueError("compact is for unguided, unforced sampling")
    if crop and (guided or streams > 1):
        raise ValueError("cropping needs one stream and no guidance")
    rows = list(range(b))  # the original index of each row still in the batch
    batch = list(prompts) + (list(guidance.uncond_prompts) if guided else [])  # rows b.. are the twins
    idx, pos = left_pad(batch)
    idx, pos = idx.to(device), pos.to(device)
    cond = condition or Conditioning()
    if condition is not None:
        condition.check(len(batch), window, compact)
        pos = condition.prompt_positions(pos)
    first, every = cond.inputs(True, device), cond.inputs(False, device)
    penalise = sampling.repetition_penalty != 1.0
    if penalise and streams > 1:
        raise ValueError("the repetition penalty is for single-stream models")
    history = idx.masked_fill(pos < 0, -1) if penalise else None  # (B, L) for the repetition penalty
    outputs: list[list[int]] = [[] for _ in range(b)]
    done = torch.zeros(b, dtype=torch.bool)
    if max_new_tokens <= 0:
        return outputs
    capacity = idx.shape[1] + cond.prefix_len + max_new_tokens
    if window is not None:
        if idx.shape[1] > window.size and not crop:
            raise ValueError(f"the prompt ({idx.shape[1]} tokens) is longer than the window ({window.size})")
        capacity = min(capacity, window.size)
    cropping = crop and (idx.shape[1] > window.size or not use_cache)  # recompute the window every step
    use_cache = use_cache and not cropping
    cache = model.new_cache(len(batch), capacity=capacity) if use_cache else None
    if use_graphs(device, compile, use_cache, window is not None, compact):
        step_fn = graph_decoder()  # a static cache and a CUDA-graph-captured step (memory: a static input)
    else:
        step_fn = compiled_decoder() if (compile and use_cache) else decode_one_token
    fused = use_fused(sampling, device, compile)  # the Triton sampling kernel: CUDA and --compile only
    if cropping:
        logits = window.cropped_logits(model, prompts, outputs, rows)
    elif use_cache:
        logits = prefill(model, idx, cond.with_prefix(pos), cache, **first)
    else:
        logits = model(idx, pos=cond.with_prefix(pos), num_logits=1, **first)[:, -1]
    next_pos = pos[:, -1:] + 1  # (B, 1)
    for index in range(max_new_tokens):
        step = Step(index, index / max(1, max_new_tokens - 1), rows, outputs, sampling, compacted=compact)
        tok = choose_tokens(logits, step, rules, generators, None if history is None else history[:len(rows)], streams,
                            fused=fused)
        if on_token is not None:
            on_token(_shown(tok, done, rows, b, compact))
        tok_cpu = tok.tolist()
        for j, r in enumerate(rows):
            if done[r]:
                continue
            outputs[r].append(tuple(tok_cpu[j]) if streams > 1 else tok_cpu[j])
            if (eos_id is not None and tok_cpu[j] == eos_id) or (stop is not None and stop(r, outputs[r])):
                done[r] = True
        if bool(done.all()) or index == max_new_tokens - 1:
            break  # no forward pass for a token that will not be sampled
        if compact and 8 * int(done[rows].sum()) >= len(rows):  # drop finished rows (a cache copy, so not every step)
            keep = [j for j, r in enumerate(rows) if not done[r]]
            sel = torch.tensor(keep, device=device)
            rows = [rows[j] for j in keep]
            tok, next_pos = tok[sel], next_pos[sel]
            generators = None if generators is None else [generators[j] for j in keep]
            history = None if history is None else history[sel]
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
            logits = window.cropped_logits(model, prompts, outputs, rows)
        elif use_cache:
            if cache.length == cache.capacity:  # only reachable with a window
                next_pos = next_pos - window.slide(cache, model.rope)[:, None]
            logits = step_fn(model, tok[:, None], next_pos, cache, **every)
        else:
            idx = torch.cat([idx, tok[:, None]], dim=1)
            pos = torch.cat([pos, next_pos], dim=1)
            if window is not None and idx.shape[1] > window.size:  # nanoGPT's crop (RoPE: relative)
                idx, pos = idx[:, -window.size:], pos[:, -window.size:]
            logits = model(idx, pos=cond.with_prefix(pos), num_logits=1, **first)[:, -1]
        # a finished row still in a compacted batch stays at its last position (inside a learned table)
        next_pos = next_pos + ((~done[rows]).to(next_pos.device, torch.long)[:, None] if compact else 1)
    return outputs


def _shown(tok: torch.Tensor, done: torch.Tensor, rows: list[int], b: int, compact: bool) -> torch.Tensor:
    """The tokens an ``on_token`` callback sees: one per original row, -1 for rows already done
    (and for rows that left a compacted batch)."""
    shown = tok.masked_fill(done[rows].to(tok.device).view(-1, *[1] * (tok.dim() - 1)), -1)
    if compact:
        shown = torch.full((b, *tok.shape[1:]), -1, dtype=tok.dtype, device=tok.device).index_copy(
            0, torch.tensor(rows, device=tok.device), shown)
    return shown
