"""One progress bar for every command that runs longer than a second: a rich bar on stderr with
the units of the work (tokens, scales, frames, faces...) and an ETA. ``--quiet`` turns it off;
rich honours ``NO_COLOR``; on a stderr that is not a terminal it draws nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from argen.modalities.base import OnProgress


@contextlib.contextmanager
def progress_bar(disabled: bool = False, label: str = "generating") -> Iterator[OnProgress | None]:
    """Yields an ``on_progress(done, total, unit)`` callback (None when disabled)."""
    if disabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
                   TimeRemainingColumn(), console=console, transient=True)
    task = bar.add_task(label, total=None, unit="")

    def update(done: int, total: int, unit: str) -> None:
        bar.update(task, completed=done, total=total, unit=unit)

    with bar:
        yield update
