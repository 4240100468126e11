"""The next-scale loop (VAR, Tian et al. 2024): after the conditioning prefix, each step feeds
one whole scale's inputs and samples all of the next scale's tokens in parallel, reading the
earlier scales from the KV cache. The backbone's block-causal mask makes tokens of a scale
see each other and every coarser scale. Optionally the coarsest scales go token by token first.
"""

from __future__ import annotations

from typing import Callable

import torch

from argen.engine.sampling.processors import SamplingConfig, guide, make_generators, probs_from_logits, process_logits, sample
from argen.errors import UsageError

# (scale k, its codes (B, s, s), or with more_smooth its code weights (B, s*s, V)) -> the next
# scale's inputs: ids (B, n_{k+1}) or features (B, n_{k+1}, C)
NextInputs = Callable[[int, torch.Tensor], torch.Tensor]
History = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def feature_inputs(step: Callable[[int, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                   f_hat: torch.Tensor) -> NextInputs:
    """VAR's scale inputs as a :data:`NextInputs`: ``step(k, f_hat, codes)`` adds scale k's codes to
    the running feature map ``f_hat`` (B, C, h, w) and returns it with its view at scale k+1's
    grid (B, C, s', s'), which the model reads as (B, s'^2, C)."""
    state = [f_hat]

    def next_inputs(k: int, codes: torch.Tensor) -> torch.Tensor:
        state[0], nxt = step(k, state[0], codes)
        return nxt.flatten(2).transpose(1, 2)

    return next_inputs


def smooth_weights(logits: torch.Tensor, progress: float, generators: list[torch.Generator]) -> torch.Tensor:
    """VAR's ``more_smooth`` (FoundationVision/VAR ``models/var.py``, ``autoregressive_infer_cfg``,
    with ``gumbel_softmax_with_rng`` of ``models/helpers.py``): instead of one code, each token
    passes on a Gumbel-softmax over the codebook, of the filtered logits (B, n, V) sharpened by
    ``1 + progress``, at temperature ``tau = max(0.27 (1 - 0.95 progress), 0.005)``; returns the
    weights (B, n, V). Row ``b``'s Gumbel noise ``-log(E)``, ``E ~ Exp(1)``, comes from
    ``generators[b]``, after that row's token draw, as the reference draws from its one generator."""
    tau = max(0.27 * (1 - progress * 0.95), 0.005)
    gumbels = torch.stack([-torch.empty_like(row).exponential_(generator=g).log()
                           for row, g in zip(logits, generators)])  # (B, n, V)
    return ((logits.mul(1 + progress) + gumbels) / tau).softmax(-1)


def extend(seq: History, nxt: torch.Tensor) -> History:
    """The uncached input history plus one scale's inputs: ids stay one (R, T) tensor; features
    (R, n, C) collect after the id prefix as a pair (ids (R, P), features (R, T, C))."""
    if not nxt.is_floating_point():
        return torch.cat([seq, nxt], dim=1)
    if isinstance(seq, tuple):
        return seq[0], torch.cat([seq[1], nxt], dim=1)
    return seq, nxt


@torch.inference_mode()
def generate_scales(model: Callable[..., torch.Tensor], prefix: torch.Tensor, start: torch.Tensor, scales: list[int],
                    next_inputs: NextInputs, sampling: SamplingConfig | None = None, *,
                    generators: list[torch.Generator] | None = None, seed: int | None = None,
                    uncond_prefix: torch.Tensor | None = None, vocab_limit: int | None = None,
                    forced: list[torch.Tensor] | None = None, use_cache: bool = True,
                    raster: int = 0, more_smooth: bool = False, always_twins: bool = False) -> list[torch.Tensor]:
    """Sample one grid of codes per scale; returns ``[(B, s, s) for s in scales]``.

    ``prefix`` (B, P) are the conditioning ids and ``start`` (B, 1) the input that predicts the
    first scale. With ``uncond_prefix`` and ``sampling.guided`` (a guidance weight other than 1
    somewhere) the unconditional twins run in the same batch for classifier-free guidance (the
    schedule's progress is the scale index). ``forced[k]`` (B, s*s) keeps every entry that is not -1 instead of sampling it.
    ``use_cache=False`` recomputes the whole sequence for every scale (the reference). With
    ``raster`` > 1 the first ``raster`` scales are sampled one token at a time in raster order,
    each token the input of the next (``ImageLayout.raster_scales``); the rest in parallel.

    ``model`` is any module called as ``model(inputs, cache=..., num_logits=...)`` with a
    ``new_cache(rows, capacity=...)``: the backbone Transformer, or VAR, whose scale inputs are
    features; uncached, those arrive as the pair that :func:`extend` builds.

    ``more_smooth`` (VAR's option of that name, off by default) hands ``next_inputs`` each
    scale's :func:`smooth_weights` (B, s*s, V) in place of its codes, the last scale's too (so
    that a stateful ``next_inputs`` ends with the image's features); the returned grids are
    still the codes drawn. It needs sampling (temperature > 0), no raster scales and no forcing.
    ``always_twins`` runs the unconditional twins even where no scale is guided, as VAR's
    reference does: the rows' number sets how the matrix products round, so only then are the
    conditional logits bit-identical to the reference's.
    """
    sampling = sampling or SamplingConfig()
    if more_smooth and (sampling.greedy or raster or forced is not None):
        raise UsageError("more_smooth samples Gumbel noise on every scale: it needs a temperature above 0, "
                         "and no raster scales or forced tokens", hint="leave more_smooth off for greedy decoding")
    device = next(model.parameters()).device
    b = prefix.shape[0]
    if generators is None and not sampling.greedy:
        generators = make_generators(seed if seed is not None else torch.seed() % 2**31, b, device)
    guided = uncond_prefix is not None and (sampling.guided or always_twins)
    rows = torch.cat([prefix, uncond_prefix]) if guided else prefix
    twin = (lambda x: torch.cat([x, x])) if guided else (lambda x: x)
    seq = torch.cat([rows, twin(start)], dim=1).to(device)  # (R, P + 1)
    cache = model.new_cache(rows.shape[0], capacity=prefix.shape[1] + sum(s * s for s in scales)) if use_cache else None
    logits = model(seq, cache=cache, num_logits=1)  # (R, 1, V)

    smooth: list[torch.Tensor] = []  # with more_smooth: the last scale's weights (B, n, V)

    def pick(logits: torch.Tensor, k: int, at: slice) -> torch.Tensor:
        """Tokens (B, n) for the positions ``at`` of scale k from their logits (R, n, V)."""
        if vocab_limit is not None:
            logits = logits[..., :vocab_limit]
        progress = k / max(1, len(scales) - 1)
        logits = guide(logits, b, sampling, progress)  # (B, n, V)
        if more_smooth:
            filtered = process_logits(logits, sampling)  # (B, n, V), excluded codes at -inf
            tok = sample(filtered.softmax(-1), generators)
            smooth[:] = [smooth_weights(filtered, progress, generators)]
            return tok
        tok = logits.argmax(-1) if sampling.greedy else sample(probs_from_logits(logits, sampling), generators)
        if forced is not None:
            f = forced[k][:, at].to(device)
            tok = torch.where(f >= 0, f, tok)
        return tok

    def feed(nxt: torch.Tensor) -> torch.Tensor:
        """Logits (R, n, V) for the inputs ``nxt`` (R, n) or (R, n, C) that follow the sequence."""
        nonlocal seq
        if use_cache:
            return model(nxt, cache=cache)
        seq = extend(seq, nxt)
        return model(seq, num_logits=nxt.shape[1])

    grids = []
    for k, s in enumerate(scales):
        if k < raster:  # token by token: each sampled token is the next input, up to scale raster-1's last
            toks = []
            for i in range(s * s):
                toks.append(pick(logits[:, -1:], k, slice(i, i + 1)))  # (B, 1)
                if i < s * s - 1 or k < raster - 1:
                    logits = feed(twin(toks[-1]))
            tok = torch.cat(toks, dim=1)
        else:
            tok = pick(logits, k, slice(None))  # (B, s*s), in parallel
        grids.append(tok.view(b, s, s))
        if more_smooth:  # the last scale's weights go to next_inputs too: they shape the final features
            nxt = next_inputs(k, smooth[0])
            if k < len(scales) - 1:
                logits = feed(twin(nxt))
            continue
        if k == len(scales) - 1:
            break
        if k >= raster - 1:
            logits = feed(twin(next_inputs(k, grids[-1])))  # scale k+1's inputs: (R, n_{k+1}) or (R, n_{k+1}, C)
    return grids
