"""Scores of a block-diffusion text model (what `argen eval text` prints for one):

- the validation bound: the negative ELBO in nats per token over the validation split (every
  token but the first scored once; :func:`argen.modalities.text.bd3lm.objective.nelbo`), beside
  an autoregressive model's next-token loss on the same split;
- generative perplexity: ``n`` samples from one prompt, scored by the autoregressive model
  (``exp`` of its mean negative log-likelihood over the new tokens), next to the same figure for
  the autoregressive model's own samples at the same temperature, with the block sampler's
  forward passes per token; and the samples' character entropy and distinct 4-grams, since a
  repetitive sampler also scores a low perplexity.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

from argen.engine.sampling.processors import SamplingConfig
from argen.errors import ArgenError
from argen.modalities.text.block_diffusion.api import generate_blocks, load_block_diffusion, settings_for
from argen.modalities.text.block_diffusion.model import BlockDiffusionModel


@torch.no_grad()
def validation_bound(model: BlockDiffusionModel, ids: torch.Tensor, seq_len: int | None = None, draws: int = 4) -> float:
    """The negative ELBO in nats per token of the token stream ``ids`` (N,) (argen-bd3 models)."""
    from argen.lab.data.text import TokenStream
    from argen.lab.tasks.text_block_diffusion import scored_windows
    from argen.modalities.text.bd3lm.objective import nelbo

    n = seq_len or model.max_len
    windows = scored_windows(TokenStream(ids), n).to(model.device)
    return nelbo(model.net, windows, model.block_size, model.mask_id, draws=draws, shift=model.token_shift)


@torch.no_grad()
def score_samples(scorer, prompt: list[int], samples: list[list[int]], batch_size: int = 50) -> float:
    """Mean negative log-likelihood (nats per token) of ``samples`` after ``prompt`` under the
    autoregressive ``scorer`` (an argen :class:`Transformer`)."""
    total, count = 0.0, 0
    dev = scorer.embed.weight.device
    for i in range(0, len(samples), batch_size):
        chunk = samples[i:i + batch_size]
        width = max(len(s) for s in chunk)
        ids = torch.tensor([prompt + s + [0] * (width - len(s)) for s in chunk], device=dev)  # right-padded
        logits = scorer(ids[:, :-1]).float()[:, len(prompt) - 1:]  # (B, width, V): predicts each new token
        nll = F.cross_entropy(logits.flatten(0, 1), ids[:, len(prompt):].flatten(), reduction="none").view(len(chunk), -1)
        keep = torch.tensor([[j < len(s) for j in range(width)] for s in chunk], device=dev)
        total += float(nll[keep].sum())
        count += int(keep.sum())
    return total / count


def diversity(samples: list[list[int]]) -> dict:
    """Character entropy (nats) of all samples together, and the share of distinct 4-grams."""
    chars = Counter(t for s in samples for t in s)
    n = sum(chars.values())
    grams = [tuple(s[i:i + 4]) for s in samples for i in range(len(s) - 3)]
    return {"char_entropy": round(-sum(c / n * math.log(c / n) for c in chars.values()), 4),
            "distinct_4grams": round(len(set(grams)) / max(1, len(grams)), 4)}


def evaluate_block_diffusion(model: str | Path = "shakespeare-bd3", scorer: str | Path = "shakespeare-char",
                             data: str | Path | None = None, n: int = 200, new_tokens: int = 255,
                             prompt: str = "\n", temperature: float = 0.8, top_p: float | None = None,
                             steps: int | None = None, threshold: float | None = None, sampler: str | None = None,
                             seed: int = 0, batch_size: int = 100, bound_draws: int = 4) -> dict:
    """The validation bound and the generative perplexity of ``n`` samples (seeds ``seed + i``),
    both beside the autoregressive ``scorer``'s own figures. ``data``: the corpus whose
    validation split (nanoGPT's last 10%) is scored; None skips the bound."""
    from argen.checkpoints import resolve as weights
    from argen.checkpoints.loader import load_transformer
    from argen.engine.sampling.next_token import generate
    from argen.engine.sampling.processors import make_generators
    from argen.lab.data.text import TokenStream, read_corpus, split_corpus
    from argen.lab.eval.text import stream_loss
    from argen.modalities.text.tokenizer import load_tokenizer

    bd = load_block_diffusion(model)
    ar_dir = Path(scorer) if Path(scorer).is_dir() else weights.resolve(str(scorer)).path
    ar, info = load_transformer(ar_dir)
    ar_tok = load_tokenizer(Path(info["tokenizer"]))
    if getattr(ar_tok, "chars", None) != getattr(bd.tokenizer, "chars", None):
        raise ArgenError("the scorer's vocabulary differs from the model's", hint="score with a model of the same characters")
    out: dict = {"model": str(model), "scorer": str(scorer)}
    if data is not None:
        _, val_text = split_corpus(read_corpus(data), 0.1)
        ids = torch.tensor(bd.tokenizer.encode(val_text))
        out["val_bound"] = round(validation_bound(bd, ids, draws=bound_draws), 4)
        out["scorer_val_loss"] = round(stream_loss(ar, TokenStream(ids), ar.cfg.max_seq_len), 4)
    p = bd.tokenizer.encode(prompt)
    sampling = SamplingConfig(temperature=temperature, top_p=top_p)
    settings = settings_for(bd, steps=steps, threshold=threshold, sampler=sampler)
    bd_samples, passes, t0 = [], [], time.time()
    for i in range(0, n, batch_size):
        k = min(batch_size, n - i)
        toks, ps = generate_blocks(bd, [p] * k, list(range(seed + i, seed + i + k)), new_tokens, steps=settings.steps,
                                   threshold=settings.threshold, sampler=settings.sampler, sampling=sampling)
        bd_samples += toks
        passes += ps
    bd_seconds = time.time() - t0
    ar_samples, t0 = [], time.time()
    for i in range(0, n, batch_size):
        k = min(batch_size, n - i)
        ar_samples += generate(ar, [p] * k, new_tokens, sampling, generators=make_generators(seed + i, k))
    ar_seconds = time.time() - t0
    bd_nll, ar_nll = score_samples(ar, p, bd_samples), score_samples(ar, p, ar_samples)
    n_tok = sum(len(s) for s in bd_samples)
    out.update({
        "samples": n, "new_tokens": new_tokens, "temperature": temperature, "top_p": top_p,
        "block_size": settings.block_size, "steps": settings.steps, "threshold": settings.threshold,
        "sampler": settings.sampler,
        "gen_ppl": round(math.exp(bd_nll), 4), "scorer_gen_ppl": round(math.exp(ar_nll), 4),
        "gen_ppl_ratio": round(math.exp(bd_nll - ar_nll), 4),
        "passes_per_token": round(sum(passes) / n_tok, 4),
        "tokens_per_second": round(n_tok / bd_seconds, 1), "scorer_tokens_per_second": round(n_tok / ar_seconds, 1),
        "diversity": diversity(bd_samples), "scorer_diversity": diversity(ar_samples),
        "example": bd.tokenizer.decode(bd_samples[0][:200]),
    })
    return out


def is_block_diffusion_model(model: str) -> bool:
    """Whether a registered name or folder holds a block-diffusion text model."""
    from argen.checkpoints.resolve import resolve
    from argen.modalities.text.block_diffusion.api import is_block_diffusion

    return is_block_diffusion(resolve(model, "text").path)


def run(model: str, data, n: int | None, temperature: float | None, quiet: bool, json_out: bool) -> None:
    """`argen eval text` on a block-diffusion model: its validation bound (negative ELBO, nats per token) beside
    shakespeare-char's loss, and the generative perplexity of ``n`` samples (default 200) scored by
    shakespeare-char beside its own samples', with forward passes per token."""
    import json

    from argen.console import log

    res = evaluate_block_diffusion(model, "shakespeare-char", data=data, n=200 if n is None else n,
                                   temperature=0.8 if temperature is None else temperature)
    log(f"{res['samples']} samples of {res['new_tokens']} tokens, {res['tokens_per_second']} tokens/s", quiet)
    if json_out:
        print(json.dumps(res))
        return
    print(f"val_bound {res['val_bound']:.4f} (nats per token; shakespeare-char's val_loss {res['scorer_val_loss']:.4f})")
    print(f"gen_ppl {res['gen_ppl']:.4f} (shakespeare-char's own samples {res['scorer_gen_ppl']:.4f}, ratio "
          f"{res['gen_ppl_ratio']:.4f}) at {res['passes_per_token']:.4f} forward passes per token")
