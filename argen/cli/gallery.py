"""Rebuild a run's gallery page (OUT/index.html) and its grid sheets from OUT/manifest.jsonl.

`argen run` keeps the page up to date by itself; this rebuilds it, e.g. after files were moved
or deleted, or for a folder made by an older argen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def gallery(out: Annotated[Path, typer.Argument(help="The output folder of `argen run` (holding manifest.jsonl).")]) -> int:
    from argen.batch.gallery import Gallery
    from argen.errors import UsageError

    if not (out / "manifest.jsonl").is_file():
        raise UsageError(f"{out} holds no manifest.jsonl", hint="pass the output folder of `argen run`")
    page = Gallery.from_manifest(out).build()
    print(page)
    return 0
