"""Typer commands built from a modality's spec: one option per spec field, plus the options every
generating command has for its inputs and outputs (--prompt-file, -o, --json, --quiet, --overwrite).

The function Typer sees gets its signature from the spec, so `argen image --help`, the recipe
job schema and the Python API can never disagree about a flag.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from argen.modalities.spec import GenerationSpec, flag_info

# options of every generating command that are not part of a sample's spec
IO_OPTIONS: list[tuple[str, Any, Any]] = [
    ("prompt_file", Optional[Path], typer.Option(None, "--prompt-file", metavar="FILE",
                                                  help="Read prompts from a file (- for stdin).")),
    ("output", Optional[str], typer.Option(None, "--output", "-o", metavar="PATH",
                                           help="Output path; {i} and {seed} are filled in; a folder/ takes default names.")),
    ("overwrite", bool, typer.Option(False, "--overwrite", help="Replace existing output files (refused otherwise).")),
    ("json_out", bool, typer.Option(False, "--json", help="Print one JSON object per output on stdout.")),
    ("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress or statistics on stderr.")),
]
IO_NAMES = {name for name, _, _ in IO_OPTIONS}


def _cli_type(annotation: Any) -> Any:
    """The type Typer parses a field as: Literals and unions are read as plain str/int/float
    and checked by the spec, so every bad value gets the spec's one error format."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is list or (args and typing.get_origin(args[0]) is list):
        return Optional[list[str]]
    if origin is typing.Literal or (args and typing.get_origin(args[0]) is typing.Literal):
        return Optional[str]
    base = args[0] if args else annotation
    if base is bool:
        return bool
    return Optional[base] if base in (int, float, str) else Optional[str]


def spec_parameters(spec: type[GenerationSpec]) -> list[inspect.Parameter]:
    """One keyword parameter per CLI field of ``spec`` (its flags, help and default)."""
    params = []
    for name, field in spec.model_fields.items():
        info = flag_info(field)
        if info is None or not info["cli"]:
            continue
        flags = list(spec.prompt_flags) if name == "prompt" else info["flags"]
        helptext = spec.prompt_help if name == "prompt" else info["help"]
        kind = _cli_type(field.annotation)
        default = field.default if kind is bool else None
        show = field.default not in (None, [], False) and kind is not bool
        opt = typer.Option(default, *flags, help=helptext + (f" [default: {field.default}]" if show else ""),
                           metavar=info["metavar"], show_default=False)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=kind))
    return params


def flag_names(spec: type[GenerationSpec]) -> dict[str, str]:
    """Field name -> the flag a user typed for it (its first long form)."""
    out = {}
    for name, field in spec.model_fields.items():
        info = flag_info(field)
        if info is not None:
            flags = list(spec.prompt_flags) if name == "prompt" else info["flags"]
            out[name] = next((f.split("/")[0] for f in flags if f.startswith("--")), flags[0])
    return out


def command_from_spec(spec: type[GenerationSpec], run: Callable[..., Any], doc: str) -> Callable[..., Any]:
    """A function whose signature is the spec's options plus the IO options; calling it calls
    ``run(**values)``."""
    def command(**values: Any) -> Any:
        return run(**values)

    params = spec_parameters(spec) + [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=kind)
        for name, kind, opt in IO_OPTIONS]
    command.__signature__ = inspect.Signature(params)
    command.__doc__ = doc
    command.__name__ = spec.modality
    return command
