"""Print the generation metadata argen embedded in (or wrote beside) a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from argen.cli import options as opt


def info(file: Annotated[Path, typer.Argument(help="A file argen generated.")], json_out: opt.Json = False) -> None:
    from argen.cli.errors import printable
    from argen.io.metadata import read_metadata

    meta = read_metadata(file)
    if json_out:
        text = json.dumps(meta, ensure_ascii=False)  # escapes C0 controls, not DEL or C1 (CSI is \x9b)
        print("".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text))
        return
    width = max(len(printable(k)) for k in meta) if meta else 0
    for key, value in meta.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        print(f"{printable(key).ljust(width)}  {printable(str(value))}")

