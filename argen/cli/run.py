"""Run a batch recipe: many prompts, seeds and parameter grids, resumable.

Every finished output is recorded in OUT/manifest.jsonl; running the same recipe again skips
what is recorded and intact and makes the rest. OUT/index.html shows the outputs side by side
with their prompts and flags, updated as they land (open it in a browser).
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
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files the manifest does not record.")] = False,
    allow_outside: Annotated[bool, typer.Option("--allow-outside", help="Read prompt files outside the recipe's folder.")] = False,
    quiet: opt.Quiet = False,
    json_out: opt.Json = False,
) -> int:
    from argen.batch.local import pending, plan_lines
    from argen.batch.lock import folder_lock
    from argen.batch.manifest import Manifest
    from argen.batch.plan import build_plan
    from argen.batch.recipe import load_run_recipe
    from argen.errors import UsageError

    if backend not in ("local", "ray"):
        raise UsageError(f"unknown backend {backend!r}", hint="use local or ray")
    if workers < 1 or gpus_per_worker < 0:
        raise UsageError("--workers must be at least 1 and --gpus-per-worker 0 or more", hint="e.g. --workers 4")
    parsed, node = load_run_recipe(recipe)
    samples = build_plan(parsed, node, recipe, allow_outside=allow_outside)
    out_dir = output or Path("outputs") / recipe.stem
    if dry_run:
        for line in plan_lines(samples, pending(samples, out_dir)[1]):
            print(line)
        return 0
    Manifest(out_dir / "manifest.jsonl").check()  # a symlinked manifest is refused before anything is made
    with folder_lock(out_dir):  # one run per folder: a second one would make every sample twice
        return _run_locked(samples, out_dir, backend, address, workers, gpus_per_worker, overwrite, quiet, json_out)


def _run_locked(samples, out_dir: Path, backend: str, address, workers: int, gpus_per_worker: float,
                overwrite: bool, quiet: bool, json_out: bool) -> int:
    """The run proper, with the output folder's lock held."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from argen.batch.gallery import Gallery
    from argen.batch.local import Summary, json_line, pending, remove_stale_parts, run_local, unrecorded
    from argen.batch.manifest import Manifest
    from argen.errors import UsageError

    manifest = Manifest(out_dir / "manifest.jsonl")
    previous = manifest.load()
    err = Console(stderr=True)
    if manifest.damaged:
        n = len(manifest.damaged)
        err.print(f"{manifest.path}: skipped {n} damaged line{'s' if n > 1 else ''} "
                  f"(line{'s' if n > 1 else ''} {', '.join(map(str, manifest.damaged))})", highlight=False, soft_wrap=True)
    todo, done = pending(samples, out_dir, previous)
    if not overwrite and (theirs := unrecorded(todo, out_dir, previous)) is not None:
        raise UsageError(f"{theirs} exists and the manifest does not record it; argen does not replace files "
                         "unless told to", hint="pass --overwrite, or pick another output folder with -o")
    remove_stale_parts(out_dir)
    summary = Summary()
    for s in done:
        summary.skipped[s.job] += 1
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err, disable=quiet)
    jobs = list(dict.fromkeys(s.job for s in samples))
    tasks = {j: progress.add_task(j, total=sum(s.job == j for s in samples),
                                  completed=summary.skipped[j]) for j in jobs}

    def on_done(sample, path):  # results on stdout, as they land
        print(json_line(sample, path) if json_out else path, flush=True)

    gallery = Gallery(out_dir, samples, done)  # OUT/index.html, rewritten as samples are recorded
    gallery.write()
    with progress:
        advance = lambda s: progress.advance(tasks[s.job])  # noqa: E731
        try:
            if backend == "ray" and todo:
                from argen.batch.ray_backend import run_ray

                run_ray(todo, out_dir, summary, on_done, advance, address=address, workers=workers,
                        gpus_per_worker=gpus_per_worker, on_record=gallery.add)
            else:
                run_local(todo, out_dir, summary, on_done, advance, on_record=gallery.add)
        finally:
            gallery.finish()
    if not quiet or summary.any_failed:
        table = Table("job", "done", "skipped", "failed", box=None, header_style="bold")
        for j in jobs:
            table.add_row(j, str(summary.done[j]), str(summary.skipped[j]), str(summary.failed[j]))
        err.print(table)
        for line in summary.errors[:10]:
            err.print(f"failed: {line}", highlight=False)
        err.print(f"manifest: {out_dir / 'manifest.jsonl'}", highlight=False)
        err.print(f"gallery: {out_dir / 'index.html'}", highlight=False)
    return 1 if summary.any_failed else 0
