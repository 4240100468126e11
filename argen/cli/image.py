"""Generate images: 64x64 from a caption with the bundled shapes models, or ImageNet classes
with VAR and LlamaGen checkpoints (`--model var-d16 --class-label golden_retriever`).

Writes one PNG per seed (generation metadata inside; `argen info FILE` prints it) and prints
each path. --inpaint/--mask regenerate only the white part of the mask.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from argen.cli import options as opt
from argen.cli.output import expand_output, log, sheet_path


def image(
    prompt: Annotated[Optional[str], typer.Option("--prompt", "-p", help="The caption, e.g. 'a red circle in the top left'.")] = None,
    class_label: Annotated[Optional[list[str]], typer.Option(
        "--class-label", "-c", metavar="ID|NAME",
        help="ImageNet class for VAR/LlamaGen models: an id (207) or a name (golden_retriever); repeat for one per image.")] = None,
    num: Annotated[int, typer.Option("-n", "--num-images", help="Images to make (seeds S, S+1, ...).")] = 1,
    sampler: Annotated[Optional[str], typer.Option("--sampler", metavar="next-scale|next-token",
                                                   help="Picks the bundled model of that kind (default: shapes-next-token).")] = None,
    cfg: opt.Cfg = None,
    cfg_schedule: Annotated[Optional[str], typer.Option("--cfg-schedule", metavar="constant|linear|var",
                                                        help="linear ramps guidance from 1 to --cfg over the tokens or scales; "
                                                             "var from 1 to 1 + --cfg (VAR's ramp). Default: the model's.")] = None,
    cfg_interval: Annotated[Optional[float], typer.Option("--cfg-interval", metavar="K",
                                                          help="LlamaGen's cfg_interval: guide tokens 0..K+1 only; -1 guides all.")] = None,
    temperature: opt.Temperature = None,
    top_k: opt.TopK = None,
    top_p: opt.TopP = None,
    inpaint: Annotated[Optional[Path], typer.Option("--inpaint", metavar="IMAGE", help="Keep this image outside the mask.")] = None,
    mask: Annotated[Optional[Path], typer.Option("--mask", metavar="MASK", help="White where --inpaint's image is regenerated.")] = None,
    grid: Annotated[bool, typer.Option("--grid", help="Also write a contact sheet of all the images (NAME-grid.png).")] = False,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Images sampled together (default 32; 8 for ImageNet models).")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG path; {i} and {seed} are filled in.")] = Path("image-{seed}.png"),
    model: opt.Model = None,
    seed: opt.Seed = None,
    device: opt.Device = "auto",
    quiet: opt.Quiet = False,
    json_out: opt.Json = False,
) -> None:
    import numpy as np

    from argen.errors import UsageError
    from argen.io.png import read_image
    from argen.pipelines.image import ImagePipeline, ImageRequest, load_mask
    from argen.samplers.processors import SamplingConfig

    if output.suffix.lower() != ".png":
        raise UsageError(f"-o {output}: images are written as PNG", hint="give a path ending in .png")
    paths = expand_output(output, num)
    cfg_tokens = None
    if cfg_interval is not None:
        from argen.pipelines.llamagen import cfg_tokens_from_interval

        cfg_tokens = cfg_tokens_from_interval(cfg_interval)
    SamplingConfig(temperature=temperature or 0.0, top_k=top_k, top_p=top_p, cfg_scale=cfg or 0.0,
                   cfg_schedule=cfg_schedule or "constant", cfg_tokens=cfg_tokens)  # checked before any model loads
    flags = dict(temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg, cfg_schedule=cfg_schedule,
                 cfg_tokens=cfg_tokens)
    if class_label or (model and _class_family(model)):
        if prompt is not None or inpaint is not None or sampler is not None:
            raise UsageError("--prompt, --inpaint and --sampler go with the shapes models, not ImageNet class models",
                             hint="give --class-label ID|NAME with a VAR or LlamaGen --model")
        return _class_images(model, class_label, num, seed, flags, batch_size or 8, device, paths, output,
                             grid, quiet, json_out)
    if prompt is None:
        raise UsageError("--prompt is required", hint='e.g. --prompt "a red circle in the top left"')
    image_in = np.asarray(read_image(inpaint)) if inpaint is not None else None
    mask_in = load_mask(mask) if mask is not None else None
    pipe = ImagePipeline.from_pretrained(model, device=device, sampler=sampler)
    sampling = pipe.default_sampling(**flags)
    req = ImageRequest(prompt, n=num, seed=seed, sampling=sampling, inpaint=image_in, mask=mask_in,
                       batch_size=batch_size or 32)
    write_outputs(pipe(req), lambda o: {"prompt": prompt}, pipe.name, pipe.layout.sampler, paths, output, grid,
                  quiet, json_out)


def write_outputs(outs, fields, model: str, sampler: str, paths, output: Path, grid: bool, quiet: bool,
                  json_out: bool) -> None:
    """Write each image (and the contact sheet with --grid); print paths or JSON lines; log the time.
    ``fields(out)`` adds what identifies an image in its JSON line (its prompt or class label)."""
    from argen.io.png import contact_sheet, write_png

    for out in outs:
        path = write_png(paths(out.index, out.seed), out.image, out.metadata)
        if json_out:
            print(json.dumps({"path": str(path), "seed": out.seed, **fields(out), "model": model, "sampler": sampler}))
        else:
            print(path)
    if grid:
        sheet = write_png(sheet_path(output), contact_sheet([o.image for o in outs]),
                          {**outs[0].metadata, "seeds": [o.seed for o in outs]})
        print(json.dumps({"grid": str(sheet)}) if json_out else sheet)
    log(f"{len(outs)} image(s) in {sum(o.seconds for o in outs):.2f} s ({model}, {sampler}), seed {outs[0].seed}", quiet)


def _class_family(model: str) -> str | None:
    from argen.pipelines.class_image import family_of

    return family_of(model)


def _class_images(model, labels, num, seed, flags, batch_size, device, paths, output, grid, quiet, json_out) -> None:
    from argen.data.imagenet import class_index
    from argen.errors import UsageError
    from argen.pipelines.class_image import ClassImagePipeline, ClassImageRequest

    if not model:
        raise UsageError("--class-label needs an ImageNet class model", hint="e.g. --model var-d16 (see `argen models`)")
    if not labels:
        raise UsageError(f"{model} is class-conditional: give --class-label ID|NAME", hint="e.g. --class-label 207")
    ids = [class_index(c) for c in labels]
    pipe = ClassImagePipeline.from_pretrained(model, device=device)
    req = ClassImageRequest(ids, n=num, seed=seed, sampling=pipe.default_sampling(**flags), batch_size=batch_size)
    write_outputs(pipe(req), lambda o: {"class_label": o.label}, pipe.name, pipe.sampler, paths, output, grid,
                  quiet, json_out)
