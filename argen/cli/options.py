"""Option aliases of the commands that do not generate (run, models, info, weights); the
generating commands take theirs from their modality's spec (argen/cli/spec_options.py)."""

from __future__ import annotations

from typing import Annotated

import typer

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or statistics on stderr.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object per output on stdout.")]
