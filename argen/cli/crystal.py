"""Generate crystal structures as CIF files from a composition, CrystaLLM-style
(`argen crystal --composition BaTiO3 -n 10 -o out/`).

Every sample is post-processed (the space group's symmetry operators restored) and checked
(formula, site multiplicity, bond lengths, space group, cell); invalid samples are drawn again
up to --max-attempts, then dropped, or written with a warning comment under --keep-invalid.
Each CIF's header comments carry the generation record; `argen info FILE.cif` prints it.
--model also takes a CrystaLLM (nanoGPT) ckpt.pt, loaded without unpickling code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from argen.cli import options as opt
from argen.cli.output import check_preview, log


def crystal(
    composition: Annotated[str, typer.Option("--composition", "-c", help="Cell composition, e.g. BaTiO3 or Na2Cl2.")],
    formula_units: Annotated[Optional[int], typer.Option("--formula-units", "-z", metavar="Z",
                                                         help="Formula units per cell: the reduced composition times Z.")] = None,
    spacegroup: Annotated[Optional[str], typer.Option("--spacegroup", "-s", metavar="SYMBOL",
                                                      help="Space group to prompt with, e.g. Pm-3m, P4/mmm, P2_1/c.")] = None,
    num: Annotated[int, typer.Option("-n", "--num", help="Structures to make.")] = 1,
    temperature: opt.Temperature = None,
    top_k: opt.TopK = None,
    max_attempts: Annotated[int, typer.Option("--max-attempts", help="Draws per structure until one passes every check.")] = 3,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Tokens per CIF at most; past the model's context the window slides, as CrystaLLM's sampler does (its default: 3000).")] = 3000,
    keep_invalid: Annotated[bool, typer.Option("--keep-invalid", help="Also write structures that fail a check (with a warning comment).")] = False,
    preview: Annotated[Optional[Path], typer.Option("--preview", metavar="PNG", help="Also draw the first structure's cell to this PNG.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="A folder (out/) or a .cif path (x.cif, or x-0.cif... with -n).")] = Path("crystals/"),
    model: opt.Model = None,
    seed: opt.Seed = None,
    device: opt.Device = "auto",
    quiet: opt.Quiet = False,
    json_out: opt.Json = False,
) -> None:
    from argen.data.crystal import check_spacegroup, parse_composition
    from argen.errors import ArgenError
    from argen.io.cif import write_cif
    from argen.pipelines.crystal import CrystalPipeline, CrystalRequest, output_paths
    from argen.samplers.processors import SamplingConfig

    check_preview(preview)
    req = CrystalRequest(composition, formula_units, spacegroup, num, seed, None, max_attempts, keep_invalid, max_new_tokens)
    paths = output_paths(output, num, composition.strip())
    from argen.modalities.crystal.crystallm.spacegroup_fit import check_fit

    # bad input fails before the model loads
    check_fit(parse_composition(composition, formula_units), check_spacegroup(spacegroup))
    pipe = CrystalPipeline.from_pretrained(model, device=device)
    defaults = dict(pipe.default_sampling)
    if temperature is not None:
        defaults["temperature"] = temperature
    if top_k is not None:
        defaults["top_k"] = top_k
    req.sampling = SamplingConfig(**defaults)
    samples = pipe(req)
    written = []
    for s, path in zip(samples, paths):
        if not s.valid and not keep_invalid:
            continue
        warning = None if s.valid else f"failed checks: {', '.join(s.report.failed())} after {s.attempts} attempts"
        write_cif(path, s.cif, s.metadata, warning)
        written.append((s, path))
        if json_out:
            print(json.dumps({"path": str(path), "valid": s.valid, "seed": s.seed, "attempts": s.attempts,
                              "checks": s.report.to_dict()}))
        else:
            print(path)
    dropped = sum(not s.valid for s in samples)
    if dropped:
        what = "written with a warning" if keep_invalid else "not written (--keep-invalid writes them)"
        log(f"warning: {dropped} of {num} structures failed a check after {max_attempts} attempts; {what}", quiet)
    if not written:
        raise ArgenError(f"no valid structure for {composition} in {max_attempts} attempts per sample",
                         hint="raise --max-attempts, lower --temperature, or pass --keep-invalid")
    if preview is not None:
        from argen.io.cif_preview import draw_cell

        s = next((w for w, _ in written if w.structure is not None), None)
        if s is None:
            log("warning: no readable structure to preview", quiet)
        else:
            draw_cell(s.structure, preview, title=composition)
            log(f"preview: {preview}", quiet)


DEFAULT_SPLIT = Path("../shared/data/crystal/perov_5/test.csv")


def evaluate_crystal(model: str | None, split: Path | None, n: int, limit: int | None, temperature: float | None,
                     device: str, quiet: bool, json_out: bool) -> None:
    """`argen eval crystal`: validity, match rate and RMSE at n=1 and n=N on a test split."""
    from argen.crystal_eval import evaluate_split
    from argen.errors import UsageError
    from argen.pipelines.crystal import CrystalPipeline
    from argen.samplers.processors import SamplingConfig

    if not 1 <= n <= 1000:
        raise UsageError(f"--n must be in [1, 1000], got {n}", hint="the benchmark uses --n 20")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}", hint="e.g. --limit 100")
    split = split or DEFAULT_SPLIT
    if not split.is_file():
        raise UsageError(f"--split {split} not found", hint="give a CDVAE-style CSV, e.g. ../shared/data/crystal/perov_5/test.csv")
    pipe = CrystalPipeline.from_pretrained(model, device=device)
    sampling = dict(pipe.default_sampling)
    if temperature is not None:
        sampling["temperature"] = temperature
    r = evaluate_split(pipe, str(split), n=n, limit=limit, sampling=SamplingConfig(**sampling), quiet=quiet)
    log(f"scored {r['compositions']} compositions x {n} samples in {r['seconds']} s", quiet)
    if json_out:
        print(json.dumps({"model": pipe.name, **r}))
        return
    print(f"match rate n=1  {r['match_1'] * 100:5.1f}%  RMSE {r['rmse_1']}")
    if n > 1:
        print(f"match rate n={n:<3d}{r['match_n'] * 100:5.1f}%  RMSE {r['rmse_n']}")
    print(f"structural validity     {r['struct_valid'] * 100:5.1f}%  (true structures: {r['true_struct_valid'] * 100:.1f}%)")
    print(f"compositional validity  {r['comp_valid'] * 100:5.1f}%  (true structures: {r['true_comp_valid'] * 100:.1f}%)")
    print(f"CrystaLLM's checks      {r['validity'] * 100:5.1f}%  (true structures: {r['validity_of_true_structures'] * 100:.1f}%)")
    for c, v in r["checks"].items():
        print(f"  {c:21s} {v * 100:5.1f}%  (true structures: {r['checks_of_true_structures'][c] * 100:.1f}%)")
    print(f"samples/s               {r['samples_per_s']}  ({r['samples']} samples in {r['seconds']} s)")
