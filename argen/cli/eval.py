"""Evaluate a model: `argen eval text` prints the validation loss on tiny shakespeare's split;
`argen eval image|mesh|audio|video` generate from held-out prompts of their procedural datasets
and print what the deterministic analysers read back; `argen eval crystal --split CSV` prints
validity and match rates against a CDVAE-style test set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from argen.cli import options as opt
from argen.cli.output import log

DEFAULT_TEXT = Path("../shared/data/text/tinyshakespeare.txt")


def evaluate(
    task: Annotated[str, typer.Argument(help="What to evaluate: text, image, video, audio, crystal or mesh.")],
    model: opt.Model = None,
    n: Annotated[Optional[int], typer.Option("--n", help="image: validation prompts to render (plus n/5 held-out-pair prompts; default 500). crystal: samples per composition (default 20). mesh, audio: held-out prompts (default 100). video: held-out clips (default 64).")] = None,
    split: Annotated[Optional[Path], typer.Option("--split", help="crystal: a CDVAE-style CSV of test structures.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="crystal: score only the first K compositions.")] = None,
    sampler: Annotated[Optional[str], typer.Option("--sampler", metavar="next-scale|next-token", help="image: which bundled model.")] = None,
    cfg: Annotated[Optional[float], typer.Option("--cfg", help="image, audio, mesh, video: guidance scale (default: the model's).")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="image, audio, mesh, crystal: temperature (default: the model's).")] = None,
    collide: Annotated[Optional[bool], typer.Option("--collide/--no-collide", help="video: held-out clips whose objects bounce off each other, or pass over each other (default: as the model was trained).")] = None,
    data: Annotated[Path, typer.Option("--data", help="Text corpus; its last --val-fraction is scored.")] = DEFAULT_TEXT,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of the corpus held out (nanoGPT: 0.1).")] = 0.1,
    seq_len: Annotated[Optional[int], typer.Option("--seq-len", help="Window length (default: the model's context).")] = None,
    device: opt.Device = "auto",
    dtype: opt.Dtype = "auto",
    quantize: opt.Quantize = "none",
    quiet: opt.Quiet = False,
    json_out: opt.Json = False,
) -> None:
    import time

    from argen.data.text import TokenStream, read_corpus, split_corpus
    from argen.errors import UsageError
    from argen.evaluate import stream_loss
    from argen.pipelines.text import TextPipeline

    if task == "image":
        return evaluate_image(model, 500 if n is None else n, sampler, cfg, temperature, device, quiet, json_out)
    if task == "crystal":
        from argen.cli.crystal import evaluate_crystal

        return evaluate_crystal(model, split, 20 if n is None else n, limit, temperature, device, quiet, json_out)
    if task == "audio":
        from argen.cli.audio import evaluate_audio

        return evaluate_audio(model, 100 if n is None else n, cfg, temperature, device, quiet, json_out)
    if task == "video":
        from argen.cli.video import evaluate_video

        return evaluate_video(model, 64 if n is None else n, cfg, device, quiet, json_out, collide)
    if task == "mesh":
        from argen.cli.mesh import evaluate_mesh

        return evaluate_mesh(model, 100 if n is None else n, cfg, temperature, device, quiet, json_out)
    if task != "text":
        raise UsageError(f"no evaluation for {task!r} yet", hint="available: text, image, video, audio, crystal, mesh")
    if not 0 < val_fraction < 1:
        raise UsageError(f"--val-fraction must be in (0, 1), got {val_fraction}", hint="nanoGPT's split is 0.1")
    pipe = TextPipeline.from_pretrained(model, device=device, dtype=dtype, quantize=quantize)
    window = seq_len or pipe.context
    if not 2 <= window <= pipe.context:
        raise UsageError(f"--seq-len must be in [2, {pipe.context}], got {window}", hint="leave it out to use the context")
    _, val_text = split_corpus(read_corpus(data), val_fraction)
    stream = TokenStream(pipe.tokenizer.encode(val_text))
    t0 = time.time()
    loss = stream_loss(pipe.model, stream, window)
    log(f"scored {len(stream):,} tokens in windows of {window} in {time.time() - t0:.1f} s", quiet)
    if json_out:
        print(json.dumps({"model": pipe.ref.name, "data": str(data), "val_loss": round(loss, 4), "tokens": len(stream)}))
    else:
        print(f"val_loss {loss:.4f}")


def evaluate_image(model: str | None, n: int, sampler: str | None, cfg: float | None, temperature: float | None,
                   device: str, quiet: bool, json_out: bool) -> None:
    import time

    from argen.errors import UsageError
    from argen.evaluate import image_adherence
    from argen.pipelines.image import ImagePipeline
    if not 1 <= n <= 100_000:
        raise UsageError(f"--n must be in [1, 100000], got {n}", hint="e.g. --n 500")
    pipe = ImagePipeline.from_pretrained(model, device=device, sampler=sampler)
    sampling = pipe.default_sampling(cfg_scale=cfg, temperature=temperature)
    t0 = time.time()
    report = image_adherence(pipe, n, sampling=sampling)
    log(f"rendered and analysed {report['prompts']} images in {time.time() - t0:.1f} s", quiet)
    if json_out:
        print(json.dumps({"model": pipe.name, "sampler": pipe.layout.sampler, **report}))
        return
    ceiling = report["tokenizer_ceiling"]
    print(f"{'':14s} {'model':>6s}  {'tokenizer ceiling':>17s}")
    for key in ("single_object", "relation", "color", "shape", "position", "background", "heldout"):
        print(f"{key:14s} {report[key] * 100:5.1f}%  {ceiling[key] * 100:16.1f}%")
