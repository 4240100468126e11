"""Manage model weights: `argen weights pull NAME` downloads a registered hub model into
argen's cache ($ARGEN_HOME, default ~/.cache/argen), checks every file's sha256 and converts it;
`argen weights convert` turns VAR or LlamaGen checkpoints into argen's safetensors format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from argen.cli import options as opt
from argen.cli.output import log

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, rich_markup_mode=None)


@app.command("pull")
def pull(
    name: Annotated[str, typer.Argument(help="A registered model name or its hub id (see `argen models`).")],
    endpoint: Annotated[Optional[str], typer.Option("--endpoint", metavar="URL",
                                                    help="Hub endpoint (default: $HF_ENDPOINT, else huggingface.co).")] = None,
    attempts: Annotated[int, typer.Option("--attempts", help="Downloads per file before a sha256 mismatch is an error.")] = 3,
    quiet: opt.Quiet = False,
) -> None:
    """Download a hub model's files into the cache, verify their sha256, print the folder."""
    from argen.checkpoints.hub import pull as pull_model
    from argen.checkpoints.registry import load_registry
    from argen.errors import ArgenError, UsageError

    if attempts < 1:
        raise UsageError(f"--attempts must be at least 1, got {attempts}", hint="e.g. --attempts 3")
    entry = load_registry().models.get(name)
    if entry is None:
        from argen.checkpoints.hf_cache import registered_name

        name = registered_name(name) or name  # a hub id names the entry that pulls it
        entry = load_registry().models.get(name)
    if entry is None:
        raise ArgenError(f"unknown model {name!r}", hint="see `argen models` for the registered names")
    folder = pull_model(name, entry, endpoint=endpoint, attempts=attempts, quiet=quiet)
    log(f"{name}: every file present with its sha256", quiet)
    print(folder)


@app.command("convert")
def convert(
    sources: Annotated[list[Path], typer.Argument(help="Checkpoint files: the tokenizer's, then the transformer's "
                                                       "(e.g. vae_ch160v4096z32.pth var_d16.pth).")],
    family: Annotated[str, typer.Option("--family", metavar="var|llamagen", help="Which codebase wrote the files.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The argen model folder to write.")],
    image_size: Annotated[Optional[int], typer.Option("--image-size", metavar="256|384|512",
                                                      help="LlamaGen (and LlamaGen T2I): the resolution the GPT was trained at.")] = None,
    quiet: opt.Quiet = False,
) -> None:
    """Convert public checkpoints (read with torch.load(weights_only=True), never unpickled as
    code, or safetensors) to safetensors + config.json; print the folder."""
    from argen.checkpoints.convert import FAMILIES
    from argen.checkpoints.convert import convert as run_convert
    from argen.errors import UsageError

    if family not in FAMILIES:
        raise UsageError(f"--family must be one of {', '.join(FAMILIES)}, got {family!r}")
    from argen.io.files import check_file

    for src in sources:
        check_file(src, "checkpoint", hint="pass the checkpoint files to convert")
    options = {"image_size": image_size} if image_size is not None else {}
    out = run_convert(family, sources, output, **options)
    log(f"converted {len(sources)} file(s) into {out}", quiet)
    print(out)
