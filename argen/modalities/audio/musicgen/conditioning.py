"""What the decoder is conditioned on, for every row and its classifier-free-guidance twin.

The unconditional twin of a row is the same row with zeroed conditioning, as both references do:
transformers concatenates ``torch.zeros_like`` of the encoder states (with a zero attention mask)
for the guidance half (``MusicgenForConditionalGeneration._prepare_text_encoder_kwargs_for_generation``;
the melody model also swaps the chroma for a one-hot of bin 0,
``MusicgenMelodyForConditionalGeneration._prepare_encoder_hidden_states_kwargs_for_generation``),
and audiocraft's ``ClassifierFreeGuidanceDropout(p=1.0)`` nulls the description, which its
``T5Conditioner`` turns into masked, zeroed embeddings (``audiocraft/modules/conditioners.py``).
Zero states through bias-free key/value projections give zero keys and values, so a twin's
cross-attention adds exactly nothing, whatever its length: argen gives it one zero vector.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from argen.engine.sampling.conditioning import Conditioning
from argen.engine.transformer import Transformer

__all__ = ["Conditioning", "cross_memory", "melody_prefix", "tile_chroma"]


def cross_memory(decoder: Transformer, states: list[torch.Tensor], guided: bool) -> Conditioning:
    """Text states (L_b, d) per row -> the decoder's cross-attention memory for the rows and,
    when ``guided``, their zeroed twins after them; rows are right-padded to the longest and
    the padding masked (each row reads only its own prompt, as transformers' encoder mask)."""
    d = states[0].shape[-1]
    rows = list(states) + ([states[0].new_zeros(1, d)] * len(states) if guided else [])
    width = max(r.shape[0] for r in rows)
    dev = decoder.embed.weight.device
    padded = torch.zeros(len(rows), width, d, device=dev)  # (R, S, d)
    mask = torch.zeros(len(rows), width, dtype=torch.bool, device=dev)
    for i, r in enumerate(rows):
        padded[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = True
    return Conditioning(memory=decoder.memory(padded, None if bool(mask.all()) else mask))


def tile_chroma(chroma: torch.Tensor, proj: nn.Linear | None, length: int) -> torch.Tensor:
    """One-hot chroma (F, n_chroma) -> projected (length, d): repeated whole, then cut to
    ``length`` frames (transformers' melody model pads a short chromagram by repetition and cuts
    a long one to ``chroma_length``)."""
    h = proj(chroma) if proj is not None else chroma  # (F, d)
    return h.repeat(math.ceil(length / h.shape[0]), 1)[:length]


def melody_prefix(chromas: list[torch.Tensor], texts: list[torch.Tensor], proj: nn.Linear | None,
                  length: int, guided: bool, device: torch.device) -> Conditioning:
    """Per row: one-hot chroma (F_b, n_chroma) and text states (L_b, d) -> the prefix
    [projected chroma tiled to ``length``; text]; the twins get the null chroma (bin 0 on) and
    zero text of the same length. Rows are left-padded to the longest (position -1)."""
    n_chroma = chromas[0].shape[-1]
    null = torch.zeros(1, n_chroma, device=device)
    null[0, 0] = 1.0
    rows = [torch.cat([tile_chroma(c.to(device), proj, length), t.to(device)]) for c, t in zip(chromas, texts)]
    if guided:
        null_part = tile_chroma(null, proj, length)
        rows += [torch.cat([null_part, torch.zeros_like(t, device=device)]) for t in texts]
    width = max(r.shape[0] for r in rows)
    vecs = torch.zeros(len(rows), width, rows[0].shape[-1], device=device)  # (R, P, d)
    pos = torch.full((len(rows), width), -1, dtype=torch.long, device=device)
    for i, r in enumerate(rows):
        vecs[i, width - r.shape[0]:] = r
        pos[i, width - r.shape[0]:] = torch.arange(r.shape[0], device=device)
    return Conditioning(prefix=(vecs, pos))
