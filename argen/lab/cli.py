"""The lab's commands, `argen train` and `argen eval`. The product never imports the lab: this
module is found through the ``argen.commands`` entry point (pyproject.toml), and its
``register(app)`` adds the commands to the `argen` app."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

EVALUATIONS = ("text", "image", "video", "audio", "crystal", "mesh")


def data_root() -> Path:
    """Where the lab's data lives: $ARGEN_DATA, else the shared data folder beside the repository."""
    env = os.environ.get("ARGEN_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


def train(
    task: Annotated[str, typer.Argument(help="What to train: text, image-tokenizer, image, mesh, crystal, audio-codec, "
                                             "audio, video-codec or video.")],
    recipe: Annotated[Path, typer.Option("--recipe", "-r", help="Training recipe (YAML).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Model folder to write (default: the recipe's "
                                                                          "output, else runs/NAME).")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Override the recipe's step count (for a quick try).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Train a model from a recipe (recipes/train/*.yaml reproduce every bundled checkpoint)."""
    from argen.console import log
    from argen.errors import UsageError
    from argen.lab.recipes import load_train_recipe
    from argen.lab.train import train as run_training

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
    log(f"validation loss {summary.get('val_loss', summary['best_val_loss']):.4f} after {summary['steps']} steps, "
        f"{summary['minutes']} min", quiet)
    print(out)


def check_eval_values(**values) -> None:
    """Refuse a value the evaluators would otherwise replace by their default (a zero ``--seq-len`` is
    falsy) or carry into NaN scores: counts below 1, a held-out share outside (0, 1), a guidance
    scale or temperature that is negative or not finite."""
    import math

    from argen.errors import UsageError

    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if key == "val_fraction":
            if not 0 < value < 1:
                raise UsageError(f"{flag} {value}: must be between 0 and 1", hint="e.g. --val-fraction 0.1")
        elif isinstance(value, float):
            if not math.isfinite(value) or value < 0:
                raise UsageError(f"{flag} {value}: must be a finite number, 0 or more", hint=f"e.g. {flag} 1.0")
        elif value < 1:
            raise UsageError(f"{flag} {value}: must be at least 1", hint=f"leave {flag} out for the default")


def evaluate(
    task: Annotated[str, typer.Argument(help="What to evaluate: text, image, video, audio, crystal or mesh.")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", metavar="NAME|PATH",
                                                 help="The model (default: the bundled one).")] = None,
    n: Annotated[Optional[int], typer.Option("--n", help="image: validation prompts (plus n/5 held-out-pair prompts; default "
                                                          "500). crystal: samples per composition (default 20). mesh, audio: "
                                                          "held-out prompts (default 100). video: held-out clips (default 64). "
                                                          "text, block diffusion: samples (default 200).")] = None,
    split: Annotated[Optional[Path], typer.Option("--split", help="crystal: a CDVAE-style CSV of test structures "
                                                                   "(default: Perov-5's test split under $ARGEN_DATA).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="crystal: score only the first K compositions.")] = None,
    sampler: Annotated[Optional[str], typer.Option("--sampler", metavar="next-scale|next-token",
                                                   help="image: which bundled model.")] = None,
    cfg: Annotated[Optional[float], typer.Option("--cfg", help="image, audio, mesh, video: guidance scale (default: the model's).")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="image, audio, mesh, crystal: temperature "
                                                                                "(default: the model's).")] = None,
    collide: Annotated[Optional[bool], typer.Option("--collide/--no-collide", help="video: held-out clips whose objects bounce "
                                                                                    "off each other, or pass over each other "
                                                                                    "(default: as the model was trained).")] = None,
    max_faces: Annotated[Optional[int], typer.Option("--max-faces", help="mesh: face limit per sample (default: the "
                                                                        "model's).")] = None,
    category: Annotated[Optional[str], typer.Option("--category", help="mesh: a MeshXL category fine-tune to "
                                                                       "sample.")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="text: corpus whose last --val-fraction is scored (default: "
                                                                "tiny shakespeare under $ARGEN_DATA).")] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="text: share of the corpus held out (nanoGPT: 0.1).")] = 0.1,
    seq_len: Annotated[Optional[int], typer.Option("--seq-len", help="text: window length (default: the model's context).")] = None,
    device: Annotated[str, typer.Option("--device", metavar="auto|cpu|cuda|mps", help="Where to run.")] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", metavar="auto|float32|bfloat16|float16", help="Compute dtype.")] = "auto",
    quantize: Annotated[str, typer.Option("--quantize", metavar="none|int8", help="text: int8 weights.")] = "none",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or statistics on stderr.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Evaluate a model: `argen eval text` prints the validation loss on tiny shakespeare's split;
    `argen eval image|mesh|audio|video` generate from held-out prompts of their procedural datasets and
    print what the deterministic analysers read back (`argen eval mesh --model` a MeshXL or LLaMA-Mesh model:
    the shares that parse, are watertight and have no degenerate or duplicate face, and the mean face count,
    with and without constrained decoding); `argen eval crystal` prints validity and match
    rates against a CDVAE-style test set."""
    from argen.errors import UsageError

    if task not in EVALUATIONS:
        raise UsageError(f"no evaluation for {task!r}", hint=f"available: {', '.join(EVALUATIONS)}")
    if n is not None and not 1 <= n <= 100_000:
        raise UsageError(f"--n must be in [1, 100000], got {n}", hint="e.g. --n 100")
    check_eval_values(limit=limit, max_faces=max_faces, seq_len=seq_len, val_fraction=val_fraction, cfg=cfg,
                      temperature=temperature)
    if task == "image":
        from argen.lab.eval.image import run

        return run(model, 500 if n is None else n, sampler, cfg, temperature, device, quiet, json_out)
    if task == "crystal":
        from argen.lab.eval.crystal import run

        split = split or data_root() / "crystal" / "perov_5" / "test.csv"
        return run(model, split, 20 if n is None else n, limit, temperature, device, quiet, json_out)
    if task == "audio":
        from argen.lab.eval.audio import run

        return run(model, 100 if n is None else n, cfg, temperature, device, quiet, json_out)
    if task == "video":
        from argen.lab.eval.video import run

        return run(model, 64 if n is None else n, cfg, device, quiet, json_out, collide)
    if task == "mesh":
        from argen.lab.eval.mesh import run

        return run(model, 100 if n is None else n, cfg, temperature, device, quiet, json_out, max_faces, category)
    data = data or data_root() / "text" / "tinyshakespeare.txt"
    from argen.lab.eval.text_block_diffusion import is_block_diffusion_model

    if model is not None and is_block_diffusion_model(model):
        from argen.lab.eval.text_block_diffusion import run as run_block_diffusion

        return run_block_diffusion(model, data, n, temperature, quiet, json_out)
    from argen.lab.eval.text import run

    return run(model, data, val_fraction, seq_len, device, dtype, quantize, quiet, json_out)


def register(app: typer.Typer) -> None:
    """Add the lab's commands to the `argen` app (the ``argen.commands`` entry point)."""
    app.command("train", help=train.__doc__)(train)
    app.command("eval", help=evaluate.__doc__)(evaluate)
