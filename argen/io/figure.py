"""What the matplotlib previews share: a headless figure of an exact pixel size, its pixels, and
text that matplotlib shows as typed (no mathtext). matplotlib is imported on use."""

from __future__ import annotations

import numpy as np

from argen.errors import ArgenError

DPI = 100


def new_figure(width_px: int, height_px: int):
    """A matplotlib Figure of exactly ``width_px`` x ``height_px`` pixels on the Agg canvas (no
    pyplot state, so previews drawn in a loop leak nothing)."""
    try:
        import matplotlib
    except ImportError:
        raise ArgenError("previews need matplotlib", hint="pip install matplotlib") from None
    matplotlib.use("Agg", force=True)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def pixels(fig) -> np.ndarray:
    """The figure drawn: uint8 (H, W, 3)."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


def plain(text: str | None, limit: int = 90) -> str:
    """``text`` on one line, shortened to ``limit`` characters, with ``$`` escaped so matplotlib
    does not read it as mathtext (a prompt is shown as typed)."""
    one = " ".join(str(text or "").split())
    if len(one) > limit:
        one = one[: limit - 1] + "\u2026"
    return one.replace("$", r"\$")
