"""One evaluator for every modality. Text: validation loss over a whole token stream."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from argen.data.text import TokenStream
from argen.models.transformer import Transformer


@torch.no_grad()
def stream_loss(model: Transformer, stream: TokenStream, seq_len: int, batch_size: int = 32) -> float:
    """Mean next-token cross-entropy (nats) over every non-overlapping window of ``stream``.

    Each window starts with an empty context, as the random windows of nanoGPT's estimate do, so
    the figure is comparable with the losses nanoGPT reports; it covers every token once.
    """
    x, y = stream.windows(seq_len)  # (W, T)
    if x.shape[0] == 0:
        raise ValueError(f"the evaluation text is shorter than one window of {seq_len} tokens")
    total, count = 0.0, 0
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        logits = model(xb.to(model.embed.weight.device))
        total += F.cross_entropy(logits.float().flatten(0, 1), yb.flatten().to(logits.device), reduction="sum").item()
        count += yb.numel()
    return total / count


EVAL_SEED = 2024  # held-out seed: the prompts differ from every training scene's draw


def image_prompts(n: int, seed: int = EVAL_SEED) -> list[tuple[str, "object", bool, "object"]]:
    """``n`` validation prompts plus n/5 (at least 20) held-out-pair prompts:
    (caption, scene, held out, the generator's own rendering of it)."""
    from argen.data.shapes import sample

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

    from argen.data.shapes_analysis import score
    from argen.models.image_vq import to_unit

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
