"""One decoding step, shared by every loop: the model's forward pass for a prompt (prefill) or one
new token (decode), and the choice of the next tokens from the logits (the rules, the sampling
processors, the draw). The next-token loop, speculative decoding and the audio and image
pipelines all go through these, so a row's tokens are the same whichever loop made them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from argen.engine.kv_cache import KVCache, mark_static
from argen.engine.sampling.processors import SamplingConfig, probs_from_logits, sample
from argen.engine.sampling.rules import Guidance, Rule, Step
from argen.engine.transformer import Transformer


def left_pad(prompts: list[list[int]], pad_id: int = 0, start: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, L) left-padded with ``pad_id``, and positions (B, L) with -1 on padding.
    Prompts of parallel streams (each position a tuple of n ids) give ids (B, L, n).
    ``start``: each row's first position (default 0); rows may then be empty (nothing to add,
    as a block-diffusion row whose finished tokens are all in the cache)."""
    if not prompts or (start is None and any(len(p) == 0 for p in prompts)):
        raise ValueError("every prompt needs at least one token")
    width = max(len(p) for p in prompts)
    first = next((p[0] for p in prompts if p), 0)
    streams = (len(first),) if isinstance(first, (tuple, list)) else ()
    idx = torch.full((len(prompts), width, *streams), pad_id, dtype=torch.long)
    pos = torch.full((len(prompts), width), -1, dtype=torch.long)
    for b, p in enumerate(prompts):
        if p:
            at = start[b] if start is not None else 0
            idx[b, width - len(p):] = torch.tensor(p, dtype=torch.long)
            pos[b, width - len(p):] = torch.arange(at, at + len(p))
    return idx, pos


def prefill(model: Transformer, idx: torch.Tensor, pos: torch.Tensor, cache: KVCache, **inputs) -> torch.Tensor:
    """Run the prompt (B, L) through the model into ``cache``; logits of the last position (B, V).
    ``inputs``: the model's conditioning keywords (``memory``, ``prefix``), when it has any."""
    return model(idx, pos=pos, cache=cache, num_logits=1, **inputs)[:, -1]


def decode(model: Transformer, tokens: torch.Tensor, cache: KVCache, pos: torch.Tensor | None = None,
           last: bool = False, **inputs) -> torch.Tensor:
    """The decoding step: new tokens (B, T) after what ``cache`` holds (at positions ``pos`` (B, T),
    default: right after it) -> logits (B, T, V), or the last position's (B, V) with ``last``.
    One token at a time for sampling; a token and its drafts at once for speculative decoding."""
    if last:
        return model(tokens, pos=pos, cache=cache, num_logits=1, **inputs)[:, -1]
    return model(tokens, pos=pos, cache=cache, **inputs)


def decode_one_token(model: Transformer, tok: torch.Tensor, pos: torch.Tensor, cache: KVCache, **inputs) -> torch.Tensor:
    """One decoding step: tokens (B, 1) at positions (B, 1) -> logits (B, V) (``inputs``: the
    model's conditioning keywords, e.g. a cross-attention ``memory``)."""
    return decode(model, tok, cache, pos, **inputs)[:, -1]


def compiled_decoder(fn=decode_one_token):
    """``decode_one_token`` under torch.compile; lengths are symbolic so it compiles once."""
    return torch.compile(fn, dynamic=True)


def graph_decoder(compiled: bool = True):
    """``decode_one_token`` on a cache in graph mode (:meth:`KVCache.use_slot_tensor`): the step
    has fixed shapes (the whole cache read, masked by positions; the write slot in a tensor), so
    torch.compile's ``mode="reduce-overhead"`` captures it once as a CUDA graph and replays it for
    every token (gpt-fast's recipe: pytorch-labs/gpt-fast ``generate.py``). The slot is advanced
    outside the captured step. ``compiled=False``: the same step eagerly (the CPU tests' path).

    ``inputs``: the model's per-step keywords; a cross-attention ``memory`` (MusicGen's text
    encoder states) is the same tensors for every step of a batch, so it is marked as a static
    input of the graph (read in place, not copied in at every replay; a new batch re-records)."""
    inner = torch.compile(decode_one_token, mode="reduce-overhead", dynamic=False) if compiled else decode_one_token
    marked: list = [None]  # the memory whose tensors were last marked static

    def step(model: Transformer, tok: torch.Tensor, pos: torch.Tensor, cache: KVCache, **inputs) -> torch.Tensor:
        if not cache.graph_mode:
            cache.use_slot_tensor()
        memory = inputs.get("memory")
        if memory is not None and marked[0] is not memory:
            mark_static(*memory.k, *memory.v, *([] if memory.mask is None else [memory.mask]))
            marked[0] = memory
        cache.advance_slot()
        if compiled:
            torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs are consumed
        try:
            return inner(model, tok, pos, cache, **inputs)
        finally:
            cache.end_slot()

    return step


def use_graphs(device: torch.device | str, compile: bool, use_cache: bool, sliding: bool, compact: bool) -> bool:
    """The next-token loop's rule for the graph-captured step: ``--compile`` on CUDA with a cache
    that neither slides (a context window) nor drops rows (compaction), which would move it.
    Guidance twins, forced tokens, grammars and other rules run on the logits outside the step,
    and conditioning only adds fixed inputs (a cross-attention memory) or prefill-only ones (a
    prefix), so none of them keeps a family off the graph-captured step."""
    return compile and use_cache and torch.device(device).type == "cuda" and not sliding and not compact


def choose_tokens(logits: torch.Tensor, step: Step, rules: Sequence[Rule] = (),
                  generators: list[torch.Generator] | None = None, history: torch.Tensor | None = None,
                  streams: int = 1, fused: bool = False) -> torch.Tensor:
    """The next token of each row from the model's logits (B', V): the rules' logits hooks in
    order (B' may hold guidance twins, which a Guidance rule folds in), the sampling processors
    and the draw (argmax when greedy), then the rules' token hooks. Returns (B,), or
    (B, n_streams) for parallel streams.

    ``fused`` (see :func:`argen.engine.kernels.fused_sampling.use_fused`; never on CPUs): the
    guidance, the processors and the draw run as one Triton kernel; the same distribution, drawn
    from per-row Philox streams keyed by each generator's seed and the step, not the generators."""
    sampling: SamplingConfig = step.sampling
    if streams > 1:
        logits = logits.view(logits.shape[0], streams, -1)  # (B', n_streams, V / n_streams)
    if fused and history is None:
        tok = _fused_draw(logits, step, rules, generators)
        for rule in rules:
            tok = rule.tokens(tok, step)
        return tok
    for rule in rules:
        logits = rule.logits(logits, step)
    if sampling.greedy and history is None:
        tok = logits.argmax(-1)  # (B,)
    else:
        tok = sample(probs_from_logits(logits, sampling, history), generators)
    for rule in rules:
        tok = rule.tokens(tok, step)
    return tok


def _fused_draw(logits: torch.Tensor, step: Step, rules: Sequence[Rule],
                generators: list[torch.Generator] | None) -> torch.Tensor:
    """The fused kernel's tokens for logits (B', [n_streams,] V): the rules' logits hooks in order,
    except a guidance rule that comes last among them, whose combination the kernel does (a
    grammar after guidance must mask the combined logits, so then guidance runs here)."""
    from argen.engine.kernels.fused_sampling import fused_sample, step_seeds

    sampling = step.sampling
    hooks = [r for r in rules if type(r).logits is not Rule.logits]
    uncond, scale = None, 1.0
    for i, rule in enumerate(hooks):
        if isinstance(rule, Guidance) and i == len(hooks) - 1:
            logits, uncond, scale = rule.parts(logits, step)
        else:
            logits = rule.logits(logits, step)
    seeds = None
    if not sampling.greedy:
        rows = logits.shape[0]
        base = (torch.tensor([g.initial_seed() for g in generators]) if generators is not None
                else torch.randint(0, 2**31 - 1, (rows,)))
        if logits.dim() == 3:  # one stream per (row, stream): distinct seeds per stream
            base = base[:, None] * logits.shape[1] + torch.arange(logits.shape[1])
        seeds = step_seeds(base, step.index).to(logits.device)
    return fused_sample(logits, uncond, scale, sampling.temperature, sampling.top_k, sampling.top_p,
                        sampling.min_p, seeds)
