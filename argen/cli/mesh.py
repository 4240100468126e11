"""Generate triangle meshes from a caption with the bundled shapes3d model, e.g.
`argen mesh --prompt "a tall lamp" -o lamp.obj --preview lamp.png`.

Writes one mesh per seed (.obj, .glb, .ply or .stl; generation metadata inside, STL's beside
it; `argen info FILE` prints it) and prints each path. Sampling masks impossible tokens, so
every output is a valid mesh.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from argen.cli import options as opt
from argen.cli.output import check_preview, expand_output, log


def mesh(
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The caption: 'a [tall|short|wide|narrow] OBJECT'.")],
    num: Annotated[int, typer.Option("-n", "--num-meshes", help="Meshes to make (seeds S, S+1, ...).")] = 1,
    temperature: opt.Temperature = None,
    top_k: opt.TopK = None,
    top_p: opt.TopP = None,
    cfg: opt.Cfg = None,
    max_faces: Annotated[int, typer.Option("--max-faces", help="Stop a mesh at this many faces.")] = 400,
    output: Annotated[Path, typer.Option("--output", "-o", help="Mesh path (.obj, .glb, .ply, .stl); {i} and {seed} are filled in.")] = Path("mesh-{seed}.obj"),
    preview: Annotated[Optional[Path], typer.Option("--preview", help="Also render a shaded PNG; {i} and {seed} are filled in.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Meshes sampled together.")] = 16,
    model: opt.Model = None,
    seed: opt.Seed = None,
    device: opt.Device = "auto",
    quiet: opt.Quiet = False,
    json_out: opt.Json = False,
) -> None:
    from argen.errors import UsageError
    from argen.io.mesh import check_suffix

    # every flag is checked before the model loads
    check_suffix(output)
    check_preview(preview)
    if max_faces < 1:
        raise UsageError(f"--max-faces must be at least 1, got {max_faces}", hint="e.g. --max-faces 400")
    from argen.data.shapes3d import parse_caption

    parse_caption(prompt)  # unknown object words: an error listing the known ones
    from argen.samplers.processors import SamplingConfig

    SamplingConfig(temperature=temperature or 0.0, top_k=top_k, top_p=top_p, cfg_scale=cfg or 0.0)
    paths = expand_output(output, num)
    previews = expand_output(preview, num) if preview is not None else None

    from argen.io.mesh import write_mesh
    from argen.pipelines.mesh import MeshPipeline, MeshRequest

    pipe = MeshPipeline.from_pretrained(model, device=device)
    sampling = pipe.default_sampling(temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg)
    outs = pipe(MeshRequest(prompt, n=num, seed=seed, sampling=sampling, max_faces=max_faces, batch_size=batch_size))
    for out in outs:
        path = write_mesh(paths(out.index, out.seed), out.mesh, out.metadata)
        record = {"path": str(path), "seed": out.seed, "prompt": prompt, "model": pipe.name,
                  "faces": int(len(out.mesh.faces)), "watertight": bool(out.mesh.is_watertight)}
        if previews is not None:
            from argen.io.mesh_preview import write_preview

            record["preview"] = str(write_preview(previews(out.index, out.seed), out.mesh, out.metadata))
        if json_out:
            print(json.dumps(record))
        else:
            print(path)
            if previews is not None:
                print(record["preview"])
    log(f"{len(outs)} mesh(es) in {sum(o.seconds for o in outs):.2f} s ({pipe.name}), seed {outs[0].seed}, "
        f"faces {', '.join(str(len(o.mesh.faces)) for o in outs)}", quiet)


def evaluate_mesh(model: str | None, n: int, cfg: float | None, temperature: float | None, device: str,
                  quiet: bool, json_out: bool) -> None:
    """`argen eval mesh`: one mesh per held-out shapes3d caption, scored by argen.data.mesh_analysis."""
    import time

    from argen.errors import UsageError

    if not 1 <= n <= 100_000:
        raise UsageError(f"--n must be in [1, 100000], got {n}", hint="e.g. --n 100")
    from argen.data.mesh_analysis import evaluate_pipeline
    from argen.pipelines.mesh import MeshPipeline

    pipe = MeshPipeline.from_pretrained(model, device=device)
    sampling = pipe.default_sampling(cfg_scale=cfg, temperature=temperature)
    t0 = time.time()
    report = evaluate_pipeline(pipe, n, sampling=sampling)
    log(f"generated and scored {report['n']} meshes in {time.time() - t0:.1f} s", quiet)
    if json_out:
        print(json.dumps({"model": pipe.name, **report}))
        return
    c = report["ceiling"]
    print(f"{'':12s} {'model':>8s}  {'data (tokenised)':>16s}")
    print(f"{'parse':12s} {report['parse'] * 100:7.1f}%")
    print(f"{'valid':12s} {report['valid'] * 100:7.1f}%")
    print(f"{'adherence':12s} {report['adherence'] * 100:7.1f}%  {c['adherence'] * 100:15.1f}%")
    print(f"{'watertight':12s} {report['watertight'] * 100:7.1f}%  {c['watertight'] * 100:15.1f}%")
    print(f"{'chamfer':12s} {report['chamfer'] if report['chamfer'] is not None else float('nan'):8.4f}  {c['chamfer']:16.4f}")
    print(f"{'faces':12s} {report['faces']:8.1f}  {c['faces']:16.1f}")
    print("per class    " + ", ".join(f"{k} {v * 100:.0f}%" for k, v in report["per_class"].items()))
