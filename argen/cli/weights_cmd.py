"""Manage model weights: `argen weights pull NAME` downloads a registered hub model into
argen's cache ($ARGEN_HOME, default ~/.cache/argen) and checks every file's sha256."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from argen.cli import options as opt
from argen.cli.output import log

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, rich_markup_mode=None)


@app.command("pull")
def pull(
    name: Annotated[str, typer.Argument(help="A registered model name (see `argen models`).")],
    endpoint: Annotated[Optional[str], typer.Option("--endpoint", metavar="URL",
                                                    help="Hub endpoint (default: $HF_ENDPOINT, else huggingface.co).")] = None,
    attempts: Annotated[int, typer.Option("--attempts", help="Downloads per file before a sha256 mismatch is an error.")] = 3,
    quiet: opt.Quiet = False,
) -> None:
    """Download a hub model's files into the cache, verify their sha256, print the folder."""
    from argen.errors import ArgenError, UsageError
    from argen.hub import pull as pull_model
    from argen.weights import load_registry

    if attempts < 1:
        raise UsageError(f"--attempts must be at least 1, got {attempts}", hint="e.g. --attempts 3")
    entry = load_registry().models.get(name)
    if entry is None:
        raise ArgenError(f"unknown model {name!r}", hint="see `argen models` for the registered names")
    folder = pull_model(name, entry, endpoint=endpoint, attempts=attempts, quiet=quiet)
    log(f"{name}: every file present with its sha256", quiet)
    print(folder)
