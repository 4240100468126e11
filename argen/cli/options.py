"""Option aliases shared by every subcommand, so the same flag means the same thing everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Model = Annotated[Optional[str], typer.Option("--model", "-m", metavar="NAME|PATH",
                                              help="Registered model name (see `argen models`) or a model folder.")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Random seed; sample i uses seed + i. Default: random (recorded).")]
Device = Annotated[str, typer.Option("--device", metavar="auto|cpu|cuda|mps", help="Where to run.")]
Dtype = Annotated[str, typer.Option("--dtype", metavar="auto|float32|bfloat16|float16",
                                    help="Compute dtype; auto: float32 on CPU, bfloat16 on CUDA.")]
Compile = Annotated[bool, typer.Option("--compile", help="Compile the decode step with torch.compile (pays off on GPUs).")]
Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file; {i} and {seed} are filled in.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or statistics on stderr.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object per output on stdout.")]
Quantize = Annotated[str, typer.Option("--quantize", metavar="none|int8",
                                        help="int8: weight-only int8 linear layers (faster CPU decoding, ~1% logit error).")]
# sampling flags of the generative commands; None means "the model's default"
Temperature = Annotated[Optional[float], typer.Option("--temperature", "-t", help="Softmax temperature; 0 is greedy (default: the model's).")]
TopK = Annotated[Optional[int], typer.Option("--top-k", help="Keep the k most likely tokens (default: the model's).")]
TopP = Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling mass, in (0, 1] (default: the model's).")]
Cfg = Annotated[Optional[float], typer.Option("--cfg", help="Classifier-free guidance scale; 1 disables, 0 is unconditional (default: the model's).")]
