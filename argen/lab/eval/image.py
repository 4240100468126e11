"""`argen eval image`: prompt adherence of a shapes model on held-out prompts, read back by the
deterministic shapes analyser, beside the tokenizer's own ceiling."""

from __future__ import annotations

import json

import torch

from argen.console import log

EVAL_SEED = 2024  # held-out seed: the prompts differ from every training scene's draw


def image_prompts(n: int, seed: int = EVAL_SEED) -> list[tuple[str, "object", bool, "object"]]:
    """``n`` validation prompts plus n/5 (at least 20) held-out-pair prompts:
    (caption, scene, held out, the generator's own rendering of it)."""
    from argen.lab.data.shapes import sample

    val = [sample(seed, i, "val") for i in range(n)]
    held = [sample(seed, i, "heldout") for i in range(max(20, n // 5))]
    return [(c, s, False, img) for c, img, s in val] + [(c, s, True, img) for c, img, s in held]


def adherence_report(results: list[tuple["object", bool, dict]]) -> dict:
    """Accuracies (0..1) from (scene, held out, analyser score) triples: colour, shape and
    background over every prompt; position over single objects with a stated position;
    relation over two-object prompts; single_object = colour, shape and (stated) position all
    right; heldout = every category right on the held-out-pair prompts."""

    def rate(rows: list[dict], key: str) -> float:
        vals = [r[key] for r in rows if key in r]
        return round(sum(vals) / len(vals), 4) if vals else float("nan")

    plain = [r for _, held, r in results if not held]
    single = [r for s, held, r in results if not held and not s.relation]
    return {
        "color": rate(plain, "color"), "shape": rate(plain, "shape"), "background": rate(plain, "background"),
        "position": rate(plain, "position"), "relation": rate(plain, "relation"),
        "single_object": round(sum(r["color"] and r["shape"] and r.get("position", True) for r in single) / max(1, len(single)), 4),
        "heldout": rate([r for _, held, r in results if held], "all"),
    }


def image_adherence(pipe, n: int = 500, seed: int = EVAL_SEED, sampling=None, batch_size: int = 64) -> dict:
    """Render each prompt once (seed ``seed + i``) and score it with the deterministic analyser
    (see :func:`adherence_report`). ``tokenizer_ceiling`` scores the tokenizer's
    reconstructions of the generator's own images for the same prompts: what a perfect
    transformer would reach through this tokenizer."""
    import numpy as np

    from argen.lab.analysis.shapes import score
    from argen.modalities.image.vq import to_unit

    sampling = sampling or pipe.default_sampling()
    prompts = image_prompts(n, seed)
    made, ceiling = [], []
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start:start + batch_size]
            ids = [pipe.check_prompt(caption) for caption, _, _, _ in chunk]
            seeds = [seed + start + j for j in range(len(chunk))]
            images = pipe.decode(pipe.sample_tokens(ids, seeds, sampling))
            made += [(scene, held, score(scene, img)) for (_, scene, held, _), img in zip(chunk, images)]
            truth = to_unit(np.stack([np.asarray(img) for _, _, _, img in chunk])).to(pipe.device)
            recon = pipe.decode(pipe.tokenizer.encode(truth))
            ceiling += [(scene, held, score(scene, img)) for (_, scene, held, _), img in zip(chunk, recon)]
    return {"prompts": len(made), "seed": seed, "cfg": sampling.cfg_scale, "temperature": sampling.temperature,
            **adherence_report(made),
            "tokenizer_ceiling": adherence_report(ceiling)}


def run(model: str | None, n: int, sampler: str | None, cfg: float | None, temperature: float | None,
                   device: str, quiet: bool, json_out: bool) -> None:
    import time

    from argen.errors import UsageError
    from argen.modalities.image.pipeline import ImagePipeline
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
