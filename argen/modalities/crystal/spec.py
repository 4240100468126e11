"""`argen crystal`: every flag once (see argen/modalities/spec.py). The prompt is the composition."""

from __future__ import annotations

from typing import ClassVar

from argen.modalities.spec import GenerationSpec, flag


class CrystalSpec(GenerationSpec):
    modality: ClassVar[str] = "crystal"
    prompt_help: ClassVar[str] = "Cell composition, e.g. BaTiO3 or Na2Cl2 (repeat for several)."
    prompt_flags: ClassVar[tuple[str, ...]] = ("--composition", "--prompt", "-p")

    formula_units: int | None = flag(None, "--formula-units", "-z", metavar="Z", ge=1, le=64,
                                     help="Formula units per cell: the reduced composition times Z.")
    spacegroup: str | None = flag(None, "--spacegroup", "-s", metavar="SYMBOL",
                                  help="Space group to prompt with, e.g. Pm-3m, P4/mmm, P2_1/c.")
    max_new_tokens: int = flag(3000, "--max-new-tokens", ge=1, le=100_000,
                               help="Most tokens a CIF may take; past the model's context it slides as CrystaLLM does.")
    max_attempts: int = flag(3, "--max-attempts", help="Draws per structure until one passes every check.", ge=1, le=100)
    keep_invalid: bool = flag(False, "--keep-invalid", help="Also write structures that fail a check (with a warning comment).")
    preview: str | None = flag(None, "--preview", metavar="PNG", help="Also draw the first structure's cell to this PNG.")
