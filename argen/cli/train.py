"""Train a model from a recipe (recipes/train/*.yaml reproduce every bundled checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from argen.cli import options as opt
from argen.cli.output import log


def train(
    task: Annotated[str, typer.Argument(help="What to train: text, image-tokenizer, image, mesh, crystal, audio-codec, audio, video-codec or video.")],
    recipe: Annotated[Path, typer.Option("--recipe", "-r", help="Training recipe (YAML).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Model folder to write (default: the recipe's output, else runs/NAME).")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Override the recipe's step count (for a quick try).")] = None,
    quiet: opt.Quiet = False,
) -> None:
    from argen.errors import UsageError
    from argen.recipes import load_train_recipe
    from argen.train import train as run_training

    r = load_train_recipe(recipe)
    if r.task != task:
        raise UsageError(f"{recipe} is a {r.task} recipe, not {task}", hint=f"run `argen train {r.task} --recipe {recipe}`")
    if max_steps is not None:
        if max_steps < 1:
            raise UsageError(f"--max-steps must be at least 1, got {max_steps}", hint="e.g. --max-steps 100")
        r.train.max_steps = max_steps
        r.train.eval_every = min(r.train.eval_every, max_steps)
    out = output or Path(r.output or f"runs/{r.name}")
    summary = run_training(r, out, recipe_path=str(recipe), quiet=quiet)
    log(f"validation loss {summary.get('val_loss', summary['best_val_loss']):.4f} after {summary['steps']} steps, {summary['minutes']} min", quiet)
    print(out)
