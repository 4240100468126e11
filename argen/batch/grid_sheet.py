"""Labelled grid sheets of a run's image jobs that have a grid: ``OUT/JOB-grid.png``, one row per
grid point (its samples side by side), each cell captioned with its seed and its grid value(s),
with the first image's metadata plus the seeds and grid values (so `argen info` reads it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from argen.batch.plan import sheet_of

MAX_CELLS = 144  # a job with more images shows its first 144
MAX_COLUMNS = 12  # samples of a grid point side by side, at most


def _value(v: Any) -> str:
    return v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)


def job_sheet(out_dir: Path, cards: list[dict[str, Any]], axes: list[str]) -> Path | None:
    """Write the sheet of one job's done ``cards`` (in plan order); None when there is nothing to tile."""
    from PIL import Image

    from argen.io.png import read_image, read_png_metadata, write_png
    from argen.io.sheet import captioned_sheet

    cards = [c for c in cards if c["st"] == "done"][:MAX_CELLS]
    if len(cards) < 2:
        return None
    images, captions = [], []
    for c in cards:
        img = read_image(out_dir / c["f"])  # the run's own files, but the folder is the user's: size-checked
        if images and img.size != (images[0].shape[1], images[0].shape[0]):  # a grid over models of other sizes
            img = img.resize((images[0].shape[1], images[0].shape[0]), Image.BICUBIC)
        images.append(np.asarray(img))
        grid = ", ".join(f"{a}={_value(c['flags'].get(a))}" for a in axes)
        captions.append([f"seed {c['s']}", grid] if grid else [f"seed {c['s']}"])
    point = [c["flags"].get(a) for a in axes]
    per_point = sum(1 for c in cards if [c["flags"].get(a) for a in axes] == point)
    cols = per_point if 1 < per_point <= MAX_COLUMNS else None
    meta = {**(read_png_metadata(out_dir / cards[0]["f"]) or {}), "job": cards[0]["j"], "seeds": [c["s"] for c in cards],
            "grid": [{a: c["flags"].get(a) for a in axes} for c in cards]}
    meta.pop("index", None)
    meta.pop("seed", None)
    return write_png(out_dir / sheet_of(cards[0]["j"]), captioned_sheet(images, captions, cols), meta)


def write_job_sheets(out_dir: Path, cards: list[dict[str, Any]], common: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The sheet of every image job whose samples differ in some flag (a recipe grid); returns
    {job: sheet path relative to ``out_dir``}."""
    by_job: dict[str, list[dict[str, Any]]] = {}
    for c in cards:
        if c["m"] == "image":
            by_job.setdefault(c["j"], []).append(c)
    out = {}
    for job, mine in by_job.items():
        axes = sorted({k for c in mine for k in c["flags"] if k not in common.get(job, {})})
        if axes and job_sheet(out_dir, mine, axes) is not None:
            out[job] = sheet_of(job)
    return out
