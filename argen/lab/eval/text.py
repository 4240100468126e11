"""`argen eval text`: validation loss (nats per token) over a whole held-out token stream."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from argen.engine.transformer import Transformer
from argen.lab.data.text import TokenStream


@torch.no_grad()
def stream_loss(model: Transformer, stream: TokenStream, seq_len: int, batch_size: int = 32) -> float:
    """Mean next-token cross-entropy (nats) over every non-overlapping window of ``stream``.

    Each window starts with an empty context, as the random windows of nanoGPT's estimate do, so
    the figure is comparable with the losses nanoGPT reports; it covers every token once.
    """
    x, y = stream.windows(seq_len)  # (W, T)
    if x.shape[0] == 0:
        raise ValueError(f"the evaluation text is shorter than one window of {seq_len} tokens")
    total, count = 0.0, 0
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        logits = model(xb.to(model.embed.weight.device))
        total += F.cross_entropy(logits.float().flatten(0, 1), yb.flatten().to(logits.device), reduction="sum").item()
        count += yb.numel()
    return total / count


def run(model: str | None, data, val_fraction: float, seq_len: int | None, device: str, dtype: str, quantize: str,
        quiet: bool, json_out: bool) -> None:
    """`argen eval text`: the model's validation loss on the last ``val_fraction`` of ``data``."""
    import json
    import time

    from argen.console import log
    from argen.errors import UsageError
    from argen.lab.data.text import read_corpus, split_corpus
    from argen.modalities.loading import load

    if not 0 < val_fraction < 1:
        raise UsageError(f"--val-fraction must be in (0, 1), got {val_fraction}", hint="nanoGPT's split is 0.1")
    pipe = load(model, "text", device=device, dtype=dtype, quantize=quantize)
    window = seq_len or pipe.context
    if not 2 <= window <= pipe.context:
        raise UsageError(f"--seq-len must be in [2, {pipe.context}], got {window}", hint="leave it out to use the context")
    _, val_text = split_corpus(read_corpus(data), val_fraction)
    stream = TokenStream(pipe.tokenizer.encode(val_text))
    t0 = time.time()
    loss = stream_loss(pipe.model, stream, window)
    log(f"scored {len(stream):,} tokens in windows of {window} in {time.time() - t0:.1f} s", quiet)
    if json_out:
        print(json.dumps({"model": pipe.ref.name, "data": str(data), "val_loss": round(loss, 4), "tokens": len(stream)}))
    else:
        print(f"val_loss {loss:.4f}")
