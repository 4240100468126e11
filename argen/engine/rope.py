"""Rotary position embeddings (half-split layout, as in Hugging Face Llama/Qwen2).

A rotation by angle ``pos * inv_freq`` is applied to pairs ``(x[i], x[i + d/2])``. Because a
rotation by ``p`` followed by one by ``-s`` equals one by ``p - s``, keys stored after RoPE can
be re-indexed in place (see :meth:`KVCache.evict`) without keeping pre-RoPE copies.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def rope_inv_freq(head_dim: int, theta: float, scaling: dict[str, Any] | None = None) -> torch.Tensor:
    """Inverse frequencies, shape ``(head_dim // 2,)``, float32.

    ``scaling`` supports ``rope_type`` "default", "linear" (positions divided by ``factor``) and
    "llama3" (the piecewise wavelength rescaling of Llama 3.1; formula from Meta's
    ``apply_scaling`` in llama-models and the Llama 3.1 report).
    """
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind in (None, "default"):
        return inv.float()
    if kind == "linear":
        return (inv / float(scaling["factor"])).float()
    if kind == "llama3":
        factor = float(scaling["factor"])
        low = float(scaling.get("low_freq_factor", 1.0))
        high = float(scaling.get("high_freq_factor", 4.0))
        old_len = float(scaling.get("original_max_position_embeddings", 8192))
        wavelen = 2 * math.pi / inv
        # long wavelengths are slowed by `factor`, short ones kept, the band between blended
        scaled = torch.where(wavelen > old_len / low, inv / factor, inv)
        smooth = (old_len / wavelen - low) / (high - low)
        blended = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
        return torch.where(medium, blended, scaled).float()
    raise ValueError(f"unsupported rope scaling type {kind!r} (supported: default, linear, llama3)")


def rope_cos_sin(pos: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin for positions ``pos`` (B, T): each ``(B, 1, T, head_dim)`` in ``dtype``."""
    ang = pos.to(torch.float32)[..., None] * inv_freq  # (B, T, hd/2)
    ang = torch.cat([ang, ang], dim=-1)[:, None]  # (B, 1, T, hd)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (B, H, T, hd) by the angles in cos/sin (B, 1, T, hd)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def rope_grid_cos_sin(pos: torch.Tensor, inv_freq: torch.Tensor, width: int, start: int, cond: str,
                      dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """2D RoPE (LlamaGen, ``precompute_freqs_cis_2d`` in FoundationVision/LlamaGen
    ``autoregressive/models/gpt.py``): cos and sin, each ``(B, 1, T, head_dim)``.

    Position ``p >= start`` is grid cell ``(row, col) = divmod(p - start, width)``. Of the
    ``head_dim / 2`` rotary pairs the first half turn by ``row * inv_freq``, the second half by
    ``col * inv_freq``, with ``inv_freq`` of shape ``(head_dim // 4,)`` (the 1D frequencies of a
    head half as wide). Positions below ``start`` (conditioning tokens, padding) get angle 0 when
    ``cond == "identity"``, or cos = sin = 0 when ``cond == "zero"``: LlamaGen's table holds zeros
    there, which zeroes those tokens' queries and keys.
    """
    cell = (pos - start).clamp(min=0)
    row, col = torch.div(cell, width, rounding_mode="floor"), cell % width  # (B, T)
    ang = torch.cat([row.to(torch.float32)[..., None] * inv_freq,
                     col.to(torch.float32)[..., None] * inv_freq], dim=-1)  # (B, T, hd/2)
    ang = torch.cat([ang, ang], dim=-1)[:, None]  # (B, 1, T, hd)
    cos, sin = ang.cos(), ang.sin()
    if cond == "zero":
        outside = (pos < start)[:, None, :, None]  # (B, 1, T, 1)
        cos, sin = cos.masked_fill(outside, 0.0), sin.masked_fill(outside, 0.0)
    return cos.to(dtype), sin.to(dtype)


def rope_video_freqs(head_dim: int, theta: float) -> torch.Tensor:
    """Inverse frequencies for :func:`rope_video_cos_sin`: (3 * head_dim // 8,), the time axis's
    ``head_dim // 4`` (the 1D frequencies of a head half as wide) then the ``head_dim // 8`` that
    rows and columns share (those of a head a quarter as wide)."""
    return torch.cat([rope_inv_freq(head_dim // 2, theta), rope_inv_freq(head_dim // 4, theta)])


def rope_video_cos_sin(pos: torch.Tensor, inv_freq: torch.Tensor, frame_tokens: int, width: int, start: int,
                       dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """3D RoPE over (time, row, column), as video transformers use (the axial split of Qwen2-VL's
    M-RoPE): cos and sin, each ``(B, 1, T, head_dim)``, for 1D sequence positions ``pos`` (B, T).

    Position ``p >= start`` is frame ``(p - start) // frame_tokens`` at time ``start + frame``,
    its grid cell ``divmod((p - start) % frame_tokens, width)``; a position below ``start`` (a
    caption token) is time ``p``, row and column 0. Half of the rotary pairs turn with time, a
    quarter each with row and column (``inv_freq`` from :func:`rope_video_freqs`). So a query and
    a key score by their (frame, row, column) offsets, and a shift of whole frames turns only the
    time pairs, so a sliding cache keeps the grid angles (:meth:`KVCache.evict`).
    """
    n_time = 2 * inv_freq.shape[0] // 3
    rel = pos - start
    inside = rel >= 0
    cell = torch.where(inside, rel % frame_tokens, torch.zeros_like(rel))
    time = torch.where(inside, start + torch.div(rel, frame_tokens, rounding_mode="floor"), pos)
    row, col = torch.div(cell, width, rounding_mode="floor"), cell % width
    f_t, f_s = inv_freq[:n_time], inv_freq[n_time:]
    ang = torch.cat([time.to(torch.float32)[..., None] * f_t, row.to(torch.float32)[..., None] * f_s,
                     col.to(torch.float32)[..., None] * f_s], dim=-1)  # (B, T, hd/2)
    ang = torch.cat([ang, ang], dim=-1)[:, None]  # (B, 1, T, hd)
    return ang.cos().to(dtype), ang.sin().to(dtype)
