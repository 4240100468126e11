"""What the guidance scale (``--cfg``) means for each family of image models, as data: the CLI's
``--help`` and ``argen models`` show :func:`describe_guidance`. Pure Python (no torch), so help
text costs no heavy import."""

from __future__ import annotations

from dataclasses import dataclass

from argen.errors import ArgenError


@dataclass(frozen=True)
class Guidance:
    """What the guidance scale (``--cfg``) means for a family of models.

    ``schedule`` is the family's default ``cfg_schedule``; ``unguided`` the scale that gives the
    conditional model alone; ``unconditional`` the scale that samples the unconditional model
    (None: no scale does); ``help`` the text for ``--help`` and ``argen models``."""

    schedule: str
    unguided: float
    unconditional: float | None
    help: str


# one entry per family; "shapes" is the bundled text-to-image models (no "family" in config.json)
GUIDANCE: dict[str, Guidance] = {
    "var": Guidance("var", 0.0, None, (
        "VAR's ramp (FoundationVision/VAR models/var.py): at scale k of K the logits are "
        "(1 + t) cond - t uncond with t = cfg * k / (K - 1), from no guidance at the first scale "
        "to weight 1 + cfg at the last. --cfg 0 is the unguided conditional model; --cfg 1 still "
        "guides (weight 2 at the last scale). No value samples the unconditional model. "
        "Published: 1.5 for the FID figures (top-k 900, top-p 0.96); the demo uses 4.")),
    "llamagen": Guidance("constant", 1.0, 0.0, (
        "uncond + cfg * (cond - uncond) at every token (LlamaGen's autoregressive/models/generate.py): "
        "--cfg 1 disables guidance (the conditional model), --cfg 0 samples the unconditional "
        "model, above 1 guides more. Published: 2.0 for GPT-B and GPT-L, 1.75 for XL and XXL, "
        "1.65 for 3B; --cfg-interval guides only the first tokens. (The reference skips "
        "guidance for any cfg <= 1; here every value other than 1 guides.)")),
    "shapes": Guidance("constant", 1.0, 0.0, (
        "uncond + cfg * (cond - uncond) at every token or scale, the unconditional twin without "
        "the caption: --cfg 1 disables guidance (the conditional model), --cfg 0 samples the "
        "unconditional model, above 1 guides more (--cfg-schedule linear ramps from 1 to cfg). "
        "Default: the model's own (1.5 for the bundled shapes models).")),
}


def describe_guidance(family: str | None) -> str:
    """What ``--cfg`` means for a model of ``family`` ("var", "llamagen"; None or "shapes" for
    the bundled text-to-image models): one paragraph for ``--help`` and ``argen models``."""
    key = family or "shapes"
    if key not in GUIDANCE:
        raise ArgenError(f"no guidance description for family {family!r}", hint=f"one of {', '.join(GUIDANCE)}")
    return GUIDANCE[key].help
