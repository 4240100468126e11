"""Deterministic analysis of bouncing-objects frames: which palette colours are present (by
segmentation), so `argen eval video` can tell whether a generated clip keeps its objects.

A pixel belongs to a colour when it lies within :data:`MATCH` (RGB distance) of it: anti-aliased
edges, blended with the black background, fall outside and are ignored. A colour is present
when at least :data:`MIN_PIXELS` of its pixels are core pixels (see :func:`colour_areas`).
"""

from __future__ import annotations

import numpy as np

from argen.lab.data.shapes import COLORS

MATCH = 45.0
MIN_PIXELS = 3
KEEP_SHARE = 0.75  # a clip keeps its objects when at least this share of frames shows exactly them
_PALETTE = np.array(list(COLORS.values()), dtype=np.float32)  # (C, 3)
_NAMES = list(COLORS)


def colour_areas(frame: np.ndarray) -> dict[str, int]:
    """Core pixels per palette colour in one uint8 frame (H, W, 3); colours under MIN_PIXELS
    omitted. A core pixel and its four neighbours match the same colour: the one-pixel seams
    where two objects' anti-aliased edges blend (red beside yellow reads as orange) drop out."""
    h, w, _ = frame.shape
    px = frame.reshape(-1, 3).astype(np.float32)
    d = np.linalg.norm(px[:, None, :] - _PALETTE[None], axis=-1)  # (HW, C)
    nearest = d.argmin(1)
    label = np.where(d[np.arange(len(px)), nearest] < MATCH, nearest, -1).reshape(h, w)
    padded = np.pad(label, 1, constant_values=-1)
    core = ((label >= 0) & (padded[:-2, 1:-1] == label) & (padded[2:, 1:-1] == label)
            & (padded[1:-1, :-2] == label) & (padded[1:-1, 2:] == label))
    counts = np.bincount(label[core], minlength=len(_NAMES))
    return {_NAMES[c]: int(n) for c, n in enumerate(counts) if n >= MIN_PIXELS}


def presence(frames: np.ndarray) -> dict[str, float]:
    """Share of frames (T, H, W, 3) in which each palette colour is present."""
    seen: dict[str, int] = {}
    for f in frames:
        for c in colour_areas(f):
            seen[c] = seen.get(c, 0) + 1
    return {c: n / max(1, len(frames)) for c, n in seen.items()}


def keeps_objects(frames: np.ndarray, colours: set[str]) -> bool:
    """True when every expected colour is present in at least KEEP_SHARE of the frames and no
    other colour in more than 1 - KEEP_SHARE of them (an object hidden by another for a frame
    or two is allowed; one that vanishes, appears or changes colour is not)."""
    share = presence(frames)
    return (all(share.get(c, 0.0) >= KEEP_SHARE for c in colours)
            and all(v <= 1 - KEEP_SHARE for c, v in share.items() if c not in colours))
