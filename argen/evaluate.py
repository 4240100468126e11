"""One evaluator for every modality. Text: validation loss over a whole token stream."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from argen.data.text import TokenStream
from argen.models.transformer import Transformer


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
