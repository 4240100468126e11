"""Run a batch recipe: many prompts, seeds and parameter grids, resumable.

Every finished output is recorded in OUT/manifest.jsonl; running the same recipe again skips
what is recorded and intact and makes the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from argen.cli import options as opt


def run(
    recipe: Annotated[Path, typer.Argument(help="Batch recipe (YAML): defaults + jobs.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output folder (default: outputs/RECIPE-NAME).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the expanded plan and exit.")] = False,
    backend: Annotated[str, typer.Option("--backend", metavar="local|ray", help="Run here, or on a Ray cluster.")] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster address (default: a local Ray instance).")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Ray actors per model (e.g. one per GPU).")] = 1,
    gpus_per_worker: Annotated[float, typer.Option("--gpus-per-worker", help="GPUs each Ray actor reserves.")] = 0.0,
    quiet: opt.Quiet = False,
    json_out: opt.Json = False,
) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from argen.batch.local import Summary, json_line, pending, plan_lines, remove_stale_parts, run_local
    from argen.batch.plan import build_plan
    from argen.batch.recipe import load_run_recipe
    from argen.errors import UsageError

    if backend not in ("local", "ray"):
        raise UsageError(f"unknown backend {backend!r}", hint="use local or ray")
    if workers < 1 or gpus_per_worker < 0:
        raise UsageError("--workers must be at least 1 and --gpus-per-worker 0 or more", hint="e.g. --workers 4")
    parsed, node = load_run_recipe(recipe)
    samples = build_plan(parsed, node, recipe)
    out_dir = output or Path("outputs") / recipe.stem
    todo, done = pending(samples, out_dir)
    if dry_run:
        for line in plan_lines(samples, done):
            print(line)
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(out_dir)
    summary = Summary()
    for s in done:
        summary.skipped[s.job] += 1
    err = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err, disable=quiet)
    jobs = list(dict.fromkeys(s.job for s in samples))
    tasks = {j: progress.add_task(j, total=sum(s.job == j for s in samples),
                                  completed=summary.skipped[j]) for j in jobs}

    def on_done(sample, path):  # results on stdout, as they land
        print(json_line(sample, path) if json_out else path, flush=True)

    with progress:
        advance = lambda s: progress.advance(tasks[s.job])  # noqa: E731
        if backend == "ray" and todo:
            from argen.batch.ray_backend import run_ray

            run_ray(todo, out_dir, summary, on_done, advance, address=address, workers=workers,
                    gpus_per_worker=gpus_per_worker)
        else:
            run_local(todo, out_dir, summary, on_done, advance)
    if not quiet or summary.any_failed:
        table = Table("job", "done", "skipped", "failed", box=None, header_style="bold")
        for j in jobs:
            table.add_row(j, str(summary.done[j]), str(summary.skipped[j]), str(summary.failed[j]))
        err.print(table)
        for line in summary.errors[:10]:
            err.print(f"failed: {line}", highlight=False)
        err.print(f"manifest: {out_dir / 'manifest.jsonl'}", highlight=False)
    return 1 if summary.any_failed else 0
