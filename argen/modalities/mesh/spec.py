"""`argen mesh`: every flag once (see argen/modalities/spec.py)."""

from __future__ import annotations

from typing import Any, ClassVar

from argen.modalities.spec import GenerationSpec, flag


class MeshSpec(GenerationSpec):
    modality: ClassVar[str] = "mesh"
    prompt_help: ClassVar[str] = ("The caption: 'a [tall|short|wide|narrow] OBJECT' for the bundled model, any text for "
                                  "LLaMA-Mesh and x-mesh-xl; none for MeshXL (repeat for several prompts).")

    max_faces: int | None = flag(None, "--max-faces", metavar="N", ge=1, le=100_000,
                                 help="Stop a mesh at this many faces (default: the model's; shapes3d 400, MeshXL 800, "
                                      "LLaMA-Mesh 500).")
    category: str | None = flag(None, "--category", metavar="NAME",
                                help="MeshXL: sample from this category's fine-tune (chair, table, bench, lamp: "
                                     "meshxl-<size>-<category>.pth in the model folder).")
    unconstrained: bool = flag(False, "--unconstrained",
                               help="MeshXL, LLaMA-Mesh: sample without the grammar that makes every output a valid "
                                    "mesh (to see the model alone; outputs with no face are not written).")
    max_new_tokens: int | None = flag(None, "--max-new-tokens", metavar="N", ge=1, le=1_000_000,
                                      help="LLaMA-Mesh: reply tokens (default 8192, or what the context leaves).")
    preview: str | None = flag(None, "--preview", metavar="PNG",
                               help="Also render a shaded PNG; {i} and {seed} are filled in.")

    missing_prompt_message: ClassVar[str] = "no prompt given (the bundled mesh model draws from a caption)"

    @classmethod
    def prompt_needed(cls, values: dict[str, Any]) -> bool:
        """The bundled model needs a caption (read from stdin when none is typed); a named model
        may take none (MeshXL samples unconditionally), so its pipeline says what it needs."""
        model = values.get("model")
        if model is None:
            return True
        from argen.checkpoints.registry import load_registry

        entry = load_registry().models.get(model)
        return entry is not None and entry.hub is None and entry.modality == "mesh"
