"""`argen mesh`: every flag once (see argen/modalities/spec.py)."""

from __future__ import annotations

from typing import ClassVar

from argen.modalities.spec import GenerationSpec, flag


class MeshSpec(GenerationSpec):
    modality: ClassVar[str] = "mesh"
    prompt_help: ClassVar[str] = "The caption: 'a [tall|short|wide|narrow] OBJECT' (repeat for several prompts)."

    max_faces: int = flag(400, "--max-faces", help="Stop a mesh at this many faces.", ge=1, le=100_000)
    preview: str | None = flag(None, "--preview", metavar="PNG",
                               help="Also render a shaded PNG; {i} and {seed} are filled in.")
