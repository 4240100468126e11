"""Speculative decoding (Leviathan et al. 2023; Chen et al. 2023) for one sequence.

A drafter proposes ``k`` tokens with their draft distributions ``q``; the target scores them all
in one forward pass. Draft token ``x`` is accepted with probability ``min(1, p(x) / q(x))``; the
first rejected one is replaced by a sample from ``norm(max(0, p - q))``, and when all are
accepted one bonus token is drawn from ``p``. This makes every emitted token distributed
exactly as the target's (processed) distribution. Prompt-lookup drafts (Saxena 2023) are
deterministic, so their ``q`` is one-hot and the same rule applies.

``--compile``: the draft model's one-token steps run as the next-token loop's do (on CUDA a static
cache and a CUDA-graph-captured step, :func:`argen.engine.sampling.step.graph_decoder`); the
target's verify pass is compiled with dynamic shapes but not graph-captured, because its length
varies (the token plus 0..k drafts: a lookup finds fewer, the budget's tail asks fewer) and the
rejected tail is rolled back: a graph per length, or one padded to k + 1 with a masked write of
the rejected slots, would capture k + 1 graphs or waste the pass on padding for prompt lookups.
gpt-fast (pytorch-labs/gpt-fast ``generate.py``) graph-captures a verify of fixed length k + 1
only because its drafter always proposes exactly k tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from argen.engine.sampling.next_token import OnToken, StopFn
from argen.engine.sampling.processors import SamplingConfig, probs_from_logits, sample
from argen.engine.sampling.step import compiled_decoder, decode, graph_decoder, use_graphs
from argen.engine.sampling.window import ContextWindow
from argen.engine.transformer import Transformer


@dataclass
class SpecStats:
    proposed: int = 0
    accepted: int = 0
    target_calls: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0


class ModelDrafter:
    """Drafts with a smaller model that shares the target's vocabulary; keeps its own KV cache
    and rolls it back to the longest prefix it shares with the accepted context.

    ``compile``: its one-token steps through the next-token loop's step (on CUDA graph-captured on
    a static cache in graph mode; its multi-token feeds stay eager on that cache)."""

    def __init__(self, model: Transformer, sampling: SamplingConfig, capacity: int, compile: bool = False) -> None:
        self.model, self.sampling = model, sampling
        self.cache = model.new_cache(1, capacity)
        device = model.embed.weight.device
        if use_graphs(device, compile, True, False, False):
            self.step = graph_decoder()
        else:
            self.step = compiled_decoder() if compile else None
        self.cached: list[int] = []  # tokens whose keys/values are in the cache
        self.offset = 0  # context tokens slid out of the cache (a window shorter than the text)

    def propose(self, context: list[int], k: int, gen: torch.Generator | None) -> tuple[list[int], torch.Tensor | None]:
        common = 0
        for a, b in zip(self.cached, context[self.offset:]):
            if a != b:
                break
            common += 1
        common = min(common, len(context) - self.offset - 1)  # the last context token must be fed again
        self.cache.truncate(common)
        self.cached = self.cached[:common]
        cap = self.cache.capacity
        excess = common + (len(context) - self.offset - common + k) - cap  # slots short for feed + drafts
        if 0 < excess <= common:  # slide: drop the oldest cached tokens
            n_drop = min(common, max(excess, cap // 4))
            self.cache.evict(n_drop, 0, self.model.rope)
            self.cached, self.offset = self.cached[n_drop:], self.offset + n_drop
            common -= n_drop
        elif excess > common:  # even an empty cache is too small: restart from the window's tail
            self.cache.truncate(0)
            self.cached, common = [], 0
            self.offset = len(context) - (cap - k)
        device = self.model.embed.weight.device
        feed = torch.tensor([context[self.offset + common:]], device=device)
        history = torch.tensor([context], device=device)
        tokens, qs = [], []
        logits = self._one(feed) if feed.shape[1] == 1 else decode(self.model, feed, self.cache, last=True)
        self.cached += context[self.offset + common:]
        for i in range(k):
            q = probs_from_logits(logits, self.sampling, history)  # (1, V)
            tok = sample(q, None if gen is None else [gen])
            tokens.append(int(tok))
            qs.append(q[0])
            history = torch.cat([history, tok[:, None]], dim=1)
            if i < k - 1:
                logits = self._one(tok[:, None])
                self.cached.append(int(tok))
        return tokens, torch.stack(qs)  # (k,), (k, V)

    def _one(self, tok: torch.Tensor) -> torch.Tensor:
        """Logits (1, V) of one token (1, 1) after the cache: the (compiled or graph) step when
        ``compile`` asked for one; positions are the cache's slots, as in :func:`decode`."""
        if self.step is None:
            return decode(self.model, tok, self.cache, last=True)
        pos = torch.full((1, 1), self.cache.length, dtype=torch.long, device=tok.device)
        return self.step(self.model, tok, pos, self.cache)


class LookupDrafter:
    """Prompt-lookup drafts: find the latest earlier occurrence of the context's last n-gram
    (n from ``max_ngram`` down to 1) and propose the tokens that followed it."""

    def __init__(self, max_ngram: int = 3) -> None:
        if max_ngram < 1:
            raise ValueError("lookup n-gram size must be at least 1")
        self.max_ngram = max_ngram

    def propose(self, context: list[int], k: int, gen: torch.Generator | None) -> tuple[list[int], None]:
        for n in range(min(self.max_ngram, len(context) - 1), 0, -1):
            tail = context[-n:]
            for start in range(len(context) - n - 1, -1, -1):
                if context[start : start + n] == tail:
                    follow = context[start + n : start + n + k]
                    if follow:
                        return follow, None
        return [], None


def _accept(p: torch.Tensor, q: torch.Tensor | None, x: int, gen: torch.Generator | None) -> bool:
    """Accept draft token ``x`` with probability min(1, p(x) / q(x)); one-hot q when None."""
    qx = 1.0 if q is None else float(q[x])
    px = float(p[x])
    if px >= qx:
        return True
    u = float(torch.rand((), generator=gen))
    return u * qx < px


def _residual(p: torch.Tensor, q: torch.Tensor | None, x: int) -> torch.Tensor:
    """norm(max(0, p - q)) (V,): the distribution to draw from after rejecting ``x``."""
    if q is None:
        q = torch.zeros_like(p)
        q[x] = 1.0
    r = (p - q).clamp(min=0)
    total = r.sum()
    return r / total if total > 0 else p


@torch.inference_mode()
def speculative_generate(target: Transformer, prompt: list[int], max_new_tokens: int, drafter,
                         sampling: SamplingConfig | None = None, *, k: int = 4,
                         generator: torch.Generator | None = None, eos_id: int | None = None,
                         stop: StopFn | None = None, on_token: OnToken | None = None,
                         window: ContextWindow | None = None, compile: bool = False) -> tuple[list[int], SpecStats]:
    """Generate after ``prompt`` with drafts from ``drafter``; returns new tokens and statistics.
    The target verifies a token and its drafts in one pass of the shared decoding step (with
    ``compile``: under torch.compile with dynamic shapes; see the module's docstring for why it
    is not graph-captured).

    With ``window`` (a RoPE model's context), the cache slides as in :func:`generate` once the
    text outgrows it; the drafter's cache must then be given the same capacity.
    """
    window = window.size if isinstance(window, ContextWindow) else window
    sampling = sampling or SamplingConfig()
    device = target.embed.weight.device
    if not prompt:
        raise ValueError("the prompt needs at least one token")
    stats = SpecStats()
    capacity = len(prompt) + max_new_tokens + k + 1
    if window is not None:
        if len(prompt) > window:
            raise ValueError(f"the prompt ({len(prompt)} tokens) is longer than the window ({window})")
        capacity = min(capacity, window)
    cache = target.new_cache(1, capacity=capacity)
    verify = compiled_decoder(decode) if compile else decode
    if len(prompt) > 1:
        decode(target, torch.tensor([prompt[:-1]], device=device), cache, last=True)
    context = list(prompt)
    out: list[int] = []
    gens = None if generator is None else [generator]
    finished = False
    while not finished and len(out) < max_new_tokens:
        budget = max_new_tokens - len(out)
        drafts, qs = drafter.propose(context, min(k, budget - 1), generator) if budget > 1 else ([], None)
        if cache.length + 1 + len(drafts) > capacity:  # only reachable with a window
            cache.evict(max(cache.length + 1 + len(drafts) - capacity, capacity // 4), 0, target.rope)
        base = cache.length  # context[:-1] is cached (or its window); feed the last token and the drafts
        feed = torch.tensor([[context[-1]] + drafts], device=device)
        logits = verify(target, feed, cache)[0]  # (1 + n, V)
        stats.target_calls += 1
        stats.proposed += len(drafts)
        hist = torch.tensor([context + drafts], device=device)
        emitted: list[int] = []
        for i in range(len(drafts) + 1):
            p = probs_from_logits(logits[i : i + 1], sampling, hist[:, : len(context) + i])[0]  # (V,)
            if i == len(drafts):  # every draft accepted: one bonus token from p
                emitted.append(int(sample(p[None], gens)))
                break
            q = None if qs is None else qs[i]
            if _accept(p, q, drafts[i], generator):
                emitted.append(drafts[i])
                stats.accepted += 1
                continue
            emitted.append(int(sample(_residual(p, q, drafts[i])[None], gens)))
            break
        cache.truncate(base + len(emitted))  # keep the fed last token and the accepted drafts
        for tok in emitted:
            out.append(tok)
            context.append(tok)
            if on_token is not None:
                on_token(torch.tensor([tok]))
            if (eos_id is not None and tok == eos_id) or (stop is not None and stop(0, out)) or len(out) >= max_new_tokens:
                finished = True
                break
    return out, stats
